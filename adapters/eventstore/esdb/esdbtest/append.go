package esdbtest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// noStream stands for the revision of a stream without events, as
// EventStoreDB's expected version -1.
const noStream = -1

// expectation is an append's expected revision.
type expectation struct {
	kind     string // "any", "no_stream", "stream_exists" or "revision"
	revision int64
}

// Append stores the proposed events of one append, all or none.
func (s *Server) Append(stream api.Streams_AppendServer) error {
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
	var exp expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		exp.kind = "any"
	case *api.AppendReq_Options_NoStream:
		exp = expectation{"no_stream", noStream}
	case *api.AppendReq_Options_StreamExists:
		exp.kind = "stream_exists"
	case *api.AppendReq_Options_Revision:
		exp = expectation{"revision", int64(o.Revision)}
	default:
		return status.Error(codes.InvalidArgument, "append: no expected revision")
	}

	var proposed []*record
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
		proposed = append(proposed, &record{
			id:          id,
			stream:      name,
			eventType:   m.GetMetadata()["type"],
			contentType: m.GetMetadata()["content-type"],
			data:        bytes.Clone(m.GetData()),
			metadata:    bytes.Clone(m.GetCustomMetadata()),
		})
	}

	s.mu.Lock()
	leader := s.leader
	s.mu.Unlock()
	if leader != "" {
		host, port, _ := net.SplitHostPort(leader)
		stream.SetTrailer(metadata.Pairs("exception", "not-leader",
			"leader-endpoint-host", host, "leader-endpoint-port", port))
		return status.Error(codes.NotFound, "esdbtest: not the leader")
	}

	resp, fail := s.store(name, exp, proposed)
	if fail {
		return status.Error(codes.Unavailable, "esdbtest: append stored, reply lost")
	}
	return stream.SendAndClose(resp)
}

// store decides an append under the lock and, if it holds, stores it.
func (s *Server) store(name string, exp expectation, proposed []*record) (*api.AppendResp, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := int64(len(s.streams[name])) - 1 // noStream when empty

	switch s.idempotency(name, exp, current, proposed) {
	case repeated:
		// The original result, without a position: EventStoreDB answers an
		// idempotent repeat from its index, which keeps no positions.
		last := s.find(name, proposed[len(proposed)-1].id)
		return success(int64(last.revision), nil), false
	case corrupted:
		return wrongVersion(exp, current), false
	}

	ok := false
	switch exp.kind {
	case "any":
		ok = true
	case "stream_exists":
		ok = current != noStream
	default:
		ok = exp.revision == current
	}
	if !ok {
		return wrongVersion(exp, current), false
	}
	if len(proposed) == 0 {
		return success(current, nil), false
	}

	now := time.Now().UTC()
	for _, r := range proposed {
		r.revision = uint64(len(s.streams[name]))
		r.position = firstPosition + uint64(len(s.log))*recordSize
		r.created = now
		s.log = append(s.log, r)
		s.streams[name] = append(s.streams[name], r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	last := proposed[len(proposed)-1]

	if s.failAppends > 0 {
		s.failAppends--
		return nil, true
	}
	return success(int64(last.revision), &last.position), false
}

type idempotencyCheck int

const (
	fresh     idempotencyCheck = iota // not a repeat: decide by expected revision
	repeated                          // the same append again: answer its result
	corrupted                         // partly a repeat: refuse
)

// idempotency follows EventStoreDB's commit check: with an exact expected
// revision below the stream's, the events must sit right after it; with any
// other expectation, the ids are looked up in the stream. Ids stored in
// another stream do not count, as in EventStoreDB.
func (s *Server) idempotency(name string, exp expectation, current int64, proposed []*record) idempotencyCheck {
	if len(proposed) == 0 {
		return fresh
	}
	events := s.streams[name]
	if exp.kind == "revision" || exp.kind == "no_stream" {
		if exp.revision >= current {
			return fresh
		}
		for i, p := range proposed {
			at := exp.revision + 1 + int64(i)
			if at > current || events[at].id != p.id {
				if i == 0 {
					return fresh // a plain conflict, decided by the revision
				}
				return corrupted
			}
		}
		return repeated
	}
	var start *record
	for i, p := range proposed {
		r := s.find(name, p.id)
		switch {
		case r == nil && i == 0:
			return fresh
		case r == nil:
			return corrupted
		case i == 0:
			start = r
		case r.revision != start.revision+uint64(i):
			return corrupted
		}
	}
	return repeated
}

// find returns the event with this id in the stream, or nil.
func (s *Server) find(name string, id uuid.UUID) *record {
	for _, r := range s.streams[name] {
		if r.id == id {
			return r
		}
	}
	return nil
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

func wrongVersion(exp expectation, current int64) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if current == noStream {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
	}
	switch exp.kind {
	case "any":
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case "no_stream":
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case "stream_exists":
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(exp.revision)}
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
