package esdbtest

import (
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Read answers reads of one stream, reads of $all and subscriptions to $all.
func (s *Server) Read(req *api.ReadReq, out api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read: no options")
	}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	match, err := filterOf(o.GetFilter())
	if err != nil {
		return status.Error(codes.InvalidArgument, "read: "+err.Error())
	}
	var op Op
	switch {
	case o.GetSubscription() != nil && o.GetAll() != nil:
		return s.subscribe(o.GetAll(), o.GetFilter(), match, out)
	case o.GetSubscription() != nil:
		return status.Error(codes.Unimplemented, "esdbtest: subscriptions to a single stream")
	case o.GetStream() != nil:
		op = OpReadStream
	case o.GetAll() != nil:
		op = OpReadAll
	default:
		return status.Error(codes.InvalidArgument, "read: neither a stream nor $all")
	}

	ctx := out.Context()
	st := s.st
	st.mu.Lock()
	if _, err := s.admitLocked(ctx, op, false); err != nil {
		st.mu.Unlock()
		return err
	}
	v := st.visibleLocked(s)
	var picked []*record
	var resp *api.ReadResp
	if op == OpReadStream {
		name := string(o.GetStream().GetStreamIdentifier().GetStreamName())
		picked, resp, err = st.readStreamLocked(o.GetStream(), name, v, backwards, o.GetCount())
		if err != nil {
			st.mu.Unlock()
			return errStreamDeleted(ctx, name)
		}
	} else {
		picked, err = st.readAllLocked(o.GetAll(), v, backwards, o.GetCount(), match)
	}
	st.mu.Unlock()
	if err != nil {
		return err
	}
	if resp != nil {
		return out.Send(resp)
	}
	for _, r := range picked {
		if err := out.Send(eventResp(r)); err != nil {
			return err
		}
	}
	return nil
}

// readStreamLocked reads a stream among the first v records: a tombstoned
// stream is an error, a missing or soft-deleted one "not found", and a
// truncated one ($tb) starts at its truncation point.
func (st *store) readStreamLocked(o *api.ReadReq_Options_StreamOptions, name string, v int, backwards bool, count uint64) ([]*record, *api.ReadResp, error) {
	events, _, tombstoned := st.streams[name].view(v)
	if tombstoned {
		return nil, nil, errDeleted
	}
	tb := st.truncatedAt(name, v)
	if len(events) == 0 || tb == deletedStream {
		return nil, &api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}}, nil
	}
	first := uint64(tb)
	n := uint64(len(events))
	var picked []*record
	if !backwards {
		from := o.GetRevision() // zero for Start; End reads nothing forwards
		if o.GetEnd() != nil {
			from = n
		}
		for r := max(from, first); r < n && uint64(len(picked)) < count; r++ {
			picked = append(picked, events[r])
		}
		return picked, nil, nil
	}
	from := n - 1
	if o.GetStart() != nil {
		from = 0
	} else if o.GetEnd() == nil {
		from = min(o.GetRevision(), n-1)
	}
	for r := int64(from); r >= int64(first) && uint64(len(picked)) < count; r-- {
		picked = append(picked, events[r])
	}
	return picked, nil, nil
}

// readAllLocked reads $all among the first v records. Forwards a position
// is inclusive, backwards exclusive: reading back from an event's position
// starts before it.
func (st *store) readAllLocked(o *api.ReadReq_Options_AllOptions, v int, backwards bool, count uint64, match func(*record) bool) ([]*record, error) {
	var from int
	switch {
	case o.GetStart() != nil:
		from = 0
	case o.GetEnd() != nil, o.GetPosition().GetCommitPosition() == math.MaxUint64 && o.GetPosition().GetPreparePosition() == math.MaxUint64:
		from = v // (2^64-1, 2^64-1) is the server's end of the log
	default:
		p := o.GetPosition()
		i, err := st.seekLocked(tfposOf(p.GetCommitPosition(), p.GetPreparePosition()), v)
		if err != nil {
			return nil, err
		}
		from = i
	}
	var picked []*record
	if !backwards {
		for i := from; i < v && uint64(len(picked)) < count; i++ {
			if r := st.log[i]; r.event && match(r) {
				picked = append(picked, r)
			}
		}
		return picked, nil
	}
	for i := from - 1; i >= 0 && uint64(len(picked)) < count; i-- {
		if r := st.log[i]; r.event && match(r) {
			picked = append(picked, r)
		}
	}
	return picked, nil
}

// tfposOf converts a position of the protocol to the server's, which are
// signed: positions from 2^63 on are negative there.
func tfposOf(commit, prepare uint64) tfpos { return tfpos{int64(commit), int64(prepare)} }

// seekLocked returns the index of the first of the first v records at or
// after p. A position inside a record, or a negative one, is invalid, as
// on a real server; one past the end is not (it reads nothing).
func (st *store) seekLocked(p tfpos, v int) (int, error) {
	if p.commit < 0 || p.prepare < 0 {
		return 0, errInvalidPosition()
	}
	log := st.log[:v]
	i := sort.Search(len(log), func(i int) bool { return !posOf(log[i]).less(p) })
	c := uint64(p.commit)
	if c < st.endOf(v) {
		j := sort.Search(len(log), func(i int) bool { return log[i].position >= c })
		if j == len(log) || log[j].position != c {
			return 0, errInvalidPosition()
		}
	}
	return i, nil
}

// filterOf turns a read's filter into a predicate; no filter matches all.
func filterOf(f *api.ReadReq_Options_FilterOptions) (func(*record) bool, error) {
	if f == nil {
		return func(*record) bool { return true }, nil
	}
	field := func(r *record) string { return r.stream }
	expr := f.GetStreamIdentifier()
	if e := f.GetEventType(); e != nil {
		field, expr = func(r *record) string { return r.eventType }, e
	}
	if expr == nil {
		return nil, status.Error(codes.InvalidArgument, "filter without expression")
	}
	if re := expr.GetRegex(); re != "" {
		compiled, err := regexp.Compile(re)
		if err != nil {
			return nil, err
		}
		return func(r *record) bool { return compiled.MatchString(field(r)) }, nil
	}
	prefixes := expr.GetPrefix()
	return func(r *record) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(field(r), p) {
				return true
			}
		}
		return false
	}, nil
}

func eventResp(r *record) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               wireUUID(r.id),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   uint64(r.revision),
			PreparePosition:  r.position,
			CommitPosition:   r.position,
			Metadata: map[string]string{
				"type":         r.eventType,
				"content-type": r.contentType,
				"created":      ticks(r.created),
			},
			CustomMetadata: r.metadata,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.position},
	}}}
}
