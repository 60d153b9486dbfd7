package esdbtest

import (
	"context"
	"strconv"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Delete soft-deletes a stream: the server writes "$tb" (truncate before)
// to its metadata stream; reads answer "not found", and an append with
// any or no-stream brings the stream back from the next revision.
func (s *Server) Delete(ctx context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	o := req.GetOptions()
	pos, err := s.deleteStream(ctx, o.GetStreamIdentifier(), o.GetExpectedStreamRevision(), false)
	if err != nil {
		return nil, err
	}
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{
		CommitPosition: pos, PreparePosition: pos,
	}}}, nil
}

// Tombstone deletes a stream for good: a "$streamDeleted" record at
// revision 2^63-1 in the stream itself. Reads and appends then answer
// "stream deleted".
func (s *Server) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	o := req.GetOptions()
	pos, err := s.deleteStream(ctx, o.GetStreamIdentifier(), o.GetExpectedStreamRevision(), true)
	if err != nil {
		return nil, err
	}
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition: pos, PreparePosition: pos,
	}}}, nil
}

func expectedOf(o any) (int64, error) {
	switch o := o.(type) {
	case *api.DeleteReq_Options_Any, *api.TombstoneReq_Options_Any:
		return expectAny, nil
	case *api.DeleteReq_Options_NoStream, *api.TombstoneReq_Options_NoStream:
		return noStream, nil
	case *api.DeleteReq_Options_StreamExists, *api.TombstoneReq_Options_StreamExists:
		return streamExists, nil
	case *api.DeleteReq_Options_Revision:
		return int64(o.Revision), nil
	case *api.TombstoneReq_Options_Revision:
		return int64(o.Revision), nil
	}
	return 0, status.Error(codes.InvalidArgument, "delete: no expected revision")
}

// deleteStream soft-deletes (Delete) or tombstones (hard, Tombstone) a
// stream, expecting revision expected (a request's oneof), and answers the
// position of the record that does it.
func (s *Server) deleteStream(ctx context.Context, id *shared.StreamIdentifier, expected any, hard bool) (uint64, error) {
	name := string(id.GetStreamName())
	exp, err := expectedOf(expected)
	if err != nil {
		return 0, err
	}
	st := s.st
	st.mu.Lock()
	leader, err := s.admitLocked(ctx, OpDelete, true)
	if err != nil {
		st.mu.Unlock()
		return 0, err
	}
	_, cur, tombstoned := st.streams[name].view(len(st.log))
	softDeleted := st.truncatedAt(name, len(st.log)) == deletedStream
	meta, metaLast, _ := st.streams[metaStream(name)].view(len(st.log))
	switch {
	case tombstoned, exp == streamExists && softDeleted:
		st.mu.Unlock()
		return 0, errStreamDeleted(ctx, name)
	case !hard && cur < 0 && len(meta) == 0, !expectationHolds(exp, cur):
		st.mu.Unlock()
		_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "wrong-expected-version", "stream-name", name,
			"expected-version", strconv.FormatInt(exp, 10), "actual-version", strconv.FormatInt(cur, 10)))
		op := "Delete"
		if hard {
			op = "Tombstone"
		}
		return 0, status.Errorf(codes.FailedPrecondition,
			"%s failed due to WrongExpectedVersion. Stream: %s, Expected version: %d, Actual version: %d", op, name, exp, cur)
	}
	r := &record{event: true, id: uuid.New(), contentType: "application/json"}
	if hard {
		r.stream, r.revision, r.eventType, r.data = name, deletedStream, "$streamDeleted", []byte{}
	} else {
		r.stream, r.revision, r.eventType = metaStream(name), metaLast+1, "$metadata"
		r.data = []byte(`{"$tb":` + strconv.FormatInt(deletedStream, 10) + `}`)
	}
	st.writeLocked(leader, []*record{r})
	st.mu.Unlock()
	resp, err := s.awaitCommit(ctx, r.revision, r.index)
	if err != nil {
		return 0, err
	}
	return resp.GetSuccess().GetPosition().GetCommitPosition(), nil
}

// expectationHolds checks an expected revision against a stream's last.
func expectationHolds(exp, cur int64) bool {
	switch exp {
	case expectAny:
		return true
	case noStream:
		return cur == noStream
	case streamExists:
		return cur != noStream
	}
	return exp == cur
}
