package esdbtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Append stores the proposed events of one append, all or none.
func (s *Server) Append(stream api.Streams_AppendServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append: options first")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "append: empty stream name")
	}
	var exp int64
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		exp = expectAny
	case *api.AppendReq_Options_NoStream:
		exp = noStream
	case *api.AppendReq_Options_StreamExists:
		exp = streamExists
	case *api.AppendReq_Options_Revision:
		exp = int64(o.Revision)
	default:
		return status.Error(codes.InvalidArgument, "append: no expected revision")
	}

	var proposed []*record
	size := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "append: options sent twice")
		}
		id, err := uuidOf(m.GetId())
		if err != nil {
			return status.Error(codes.InvalidArgument, "append: "+err.Error())
		}
		r := &record{
			event:       true,
			id:          id,
			stream:      name,
			eventType:   m.GetMetadata()["type"],
			contentType: m.GetMetadata()["content-type"],
			data:        bytes.Clone(m.GetData()),
			metadata:    bytes.Clone(m.GetCustomMetadata()),
		}
		// The server counts an event's size as its data, its metadata and
		// twice its type's length (Event.SizeOnDisk), and stops reading as
		// soon as the append passes the limit.
		size += len(r.data) + len(r.metadata) + 2*len(r.eventType)
		if lim := s.st.opts.maxAppendSize; lim > 0 && size > lim {
			return errMaxAppendSize(ctx, lim)
		}
		proposed = append(proposed, r)
	}

	st := s.st
	st.mu.Lock()
	leader, err := s.admitLocked(ctx, OpAppend, true)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	if !leader.alive {
		// Forwarded to a leader that is gone: the forwarding times out.
		st.mu.Unlock()
		return s.afterTimeout(ctx, "Forward timeout.")
	}
	out := st.appendLocked(leader, name, exp, proposed)
	lost := false
	if out.wait && s.failAppends > 0 {
		s.failAppends--
		lost = true
	}
	st.mu.Unlock()

	switch {
	case out.err != nil:
		return statusWithTrailers(ctx, out.err, name)
	case out.resp != nil:
		return stream.SendAndClose(out.resp)
	case out.notReady:
		// The ids are those of a write not yet replicated: the server drops
		// this one and the client times out.
		return s.afterTimeout(ctx, "Prepare phase timeout.")
	}
	// A new write: answer once it is committed, or time out.
	resp, err := s.awaitCommit(ctx, out.last, out.index)
	if err != nil {
		return err
	}
	if lost {
		return status.Error(codes.Unavailable, "esdbtest: append stored, reply lost")
	}
	return stream.SendAndClose(resp)
}

// outcome is what the leader decided for an append.
type outcome struct {
	resp     *api.AppendResp // an answer now: wrong version, idempotent
	err      error           // stream deleted
	notReady bool            // an idempotent repeat of a write not yet committed
	wait     bool            // a new write: wait for its commit
	last     int64           // its last revision
	index    int             // the log index of its last record
}

var errDeleted = errors.New("stream deleted")

func statusWithTrailers(ctx context.Context, err error, stream string) error {
	if errors.Is(err, errDeleted) {
		return errStreamDeleted(ctx, stream)
	}
	return err
}

// afterTimeout answers Aborted once the write timeout has passed (or
// earlier with the client's own deadline).
func (s *Server) afterTimeout(ctx context.Context, what string) error {
	t := time.NewTimer(s.st.opts.writeTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-t.C:
		return errTimeout(what)
	}
}

// awaitCommit waits until the log record at index is committed and
// answers the success, or answers Aborted after the write timeout (the
// write stays, and commits when the followers catch up).
func (s *Server) awaitCommit(ctx context.Context, last int64, index int) (*api.AppendResp, error) {
	st := s.st
	t := time.NewTimer(st.opts.writeTimeout)
	defer t.Stop()
	for {
		st.mu.Lock()
		done, changed := st.committed > index, st.changed
		pos := st.log[index].position
		st.mu.Unlock()
		if done {
			return success(last, &pos), nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
			return nil, errTimeout("Commit phase timeout.")
		case <-changed:
		}
	}
}

// appendLocked decides an append on the leader (KurrentDB's
// IndexWriter.CheckCommit) and writes it if it holds.
func (st *store) appendLocked(leader *Server, name string, exp int64, proposed []*record) outcome {
	_, cur, tombstoned := st.streams[name].view(len(st.log))
	tb := st.truncatedAt(name, len(st.log))
	softDeleted := tb == deletedStream
	wrong := func() outcome {
		if tombstoned || (exp == streamExists && softDeleted) {
			return outcome{err: errDeleted}
		}
		return outcome{resp: wrongVersion(exp, cur)}
	}
	ok := func() outcome {
		if len(proposed) == 0 {
			return outcome{resp: success(cur, nil)}
		}
		for i, r := range proposed {
			r.revision = cur + 1 + int64(i)
		}
		recs := proposed
		if softDeleted {
			// Writing to a soft-deleted stream brings it back, from the
			// next revision on.
			undelete := st.systemEventLocked(metaStream(name), "$metadata", "")
			undelete.data = []byte(`{"$tb":` + strconv.FormatInt(cur+1, 10) + `}`)
			recs = append(append([]*record(nil), proposed...), undelete)
		}
		st.writeLocked(leader, recs)
		lastRec := proposed[len(proposed)-1]
		return outcome{wait: true, last: lastRec.revision, index: recs[len(recs)-1].index}
	}
	ids := make([]uuid.UUID, len(proposed))
	for i, r := range proposed {
		ids[i] = r.id
	}
	// The committed view, which the server's index holds.
	committed, committedLast, _ := st.streams[name].view(st.committed)
	idempotent := func(last int64) outcome {
		if committedLast < last || last >= int64(len(committed)) {
			return outcome{notReady: true}
		}
		pos := committed[last].position
		return outcome{resp: success(last, &pos)}
	}

	if tombstoned {
		if len(ids) > 0 {
			return wrong()
		}
		if exp == expectAny || exp == noStream {
			return outcome{resp: success(cur, nil)}
		}
		return wrong()
	}
	if exp == streamExists {
		if softDeleted {
			return wrong()
		}
		if cur < 0 {
			if meta, _, _ := st.streams[metaStream(name)].view(len(st.log)); len(meta) == 0 {
				return wrong()
			}
		}
	}

	// Weak idempotency: without an exact expected revision the server does
	// not know where the ids would be; it looks only in its cache.
	if exp == expectAny || exp == streamExists {
		var end int64 = -1
		for i, id := range ids {
			if e, hit := leader.cache.get(id); hit && e.stream == name {
				end = e.revision
				continue
			}
			if i > 0 {
				return wrong() // corrupted idempotency
			}
			return ok()
		}
		if len(ids) == 0 {
			return ok()
		}
		return idempotent(end)
	}

	// Strong idempotency: with an exact revision (or no-stream) below the
	// stream's, the ids must be the events right after it, found in the
	// cache or in the index.
	if exp < cur {
		n := exp
		for i, id := range ids {
			n++
			if e, hit := leader.cache.get(id); hit && e.stream == name && e.revision == n {
				continue
			}
			if n < int64(len(committed)) && committed[n].id == id {
				continue
			}
			if i > 0 {
				return wrong() // corrupted idempotency
			}
			if exp == noStream && softDeleted {
				return ok()
			}
			return wrong()
		}
		if len(ids) == 0 {
			if exp == noStream && softDeleted {
				return ok()
			}
			return wrong()
		}
		return idempotent(n)
	}
	if exp > cur {
		return wrong()
	}
	return ok() // exactly at the end: no idempotency check at all
}

func success(revision int64, position *uint64) *api.AppendResp {
	ok := &api.AppendResp_Success{}
	if revision == noStream {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(revision)}
	}
	if position == nil {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: *position, PreparePosition: *position,
		}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
}

// wrongVersion is the server's answer to a failed expectation, with the
// fields of servers before 20.6 set too, as the server does.
func wrongVersion(exp, current int64) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	switch exp {
	case expectAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case noStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: ^uint64(0)}
	case streamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(exp)}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: uint64(exp)}
	}
	if current == noStream {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(current)}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// uuidOf reads an id in either of the wire forms.
func uuidOf(u *shared.UUID) (uuid.UUID, error) {
	if st := u.GetStructured(); st != nil {
		var id uuid.UUID
		most, least := uint64(st.GetMostSignificantBits()), uint64(st.GetLeastSignificantBits())
		for i := range 8 {
			id[i] = byte(most >> (56 - 8*i))
			id[8+i] = byte(least >> (56 - 8*i))
		}
		return id, nil
	}
	return uuid.Parse(u.GetString_())
}

// wireUUID writes an id in the structured form the client asks for.
func wireUUID(id uuid.UUID) *shared.UUID {
	var most, least uint64
	for i := range 8 {
		most = most<<8 | uint64(id[i])
		least = least<<8 | uint64(id[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits: int64(most), LeastSignificantBits: int64(least),
	}}}
}
