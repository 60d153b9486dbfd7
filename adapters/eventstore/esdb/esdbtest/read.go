package esdbtest

import (
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
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
	switch {
	case o.GetSubscription() != nil && o.GetAll() != nil:
		return s.subscribe(o.GetAll(), o.GetFilter(), match, out)
	case o.GetSubscription() != nil:
		return status.Error(codes.Unimplemented, "esdbtest: subscriptions to a single stream")
	case o.GetStream() != nil:
		return s.readStream(o.GetStream(), backwards, o.GetCount(), out)
	case o.GetAll() != nil:
		return s.readAll(o.GetAll(), backwards, o.GetCount(), match, out)
	}
	return status.Error(codes.InvalidArgument, "read: neither a stream nor $all")
}

func (s *Server) readStream(o *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, out api.Streams_ReadServer) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	events := s.streams[name] // appends never change the stored prefix
	s.mu.Unlock()
	if len(events) == 0 {
		return out.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	n := uint64(len(events))
	var picked []*record
	switch {
	case !backwards:
		from := o.GetRevision() // zero for Start; End reads nothing forwards
		if o.GetEnd() != nil {
			from = n
		}
		for r := from; r < n && uint64(len(picked)) < count; r++ {
			picked = append(picked, events[r])
		}
	default:
		from := n - 1
		if o.GetStart() != nil {
			from = 0
		} else if o.GetEnd() == nil {
			from = min(o.GetRevision(), n-1)
		}
		for r := int64(from); r >= 0 && uint64(len(picked)) < count; r-- {
			picked = append(picked, events[r])
		}
	}
	for _, r := range picked {
		if err := out.Send(eventResp(r)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) readAll(o *api.ReadReq_Options_AllOptions, backwards bool, count uint64, match func(*record) bool, out api.Streams_ReadServer) error {
	s.mu.Lock()
	log := s.log
	s.mu.Unlock()
	// Forwards a position is inclusive, backwards exclusive, as in
	// EventStoreDB: reading back from an event's position starts before it.
	var picked []*record
	if !backwards {
		for i := startIndex(log, o, true); i < len(log) && uint64(len(picked)) < count; i++ {
			if match(log[i]) {
				picked = append(picked, log[i])
			}
		}
	} else {
		for i := startIndex(log, o, true) - 1; i >= 0 && uint64(len(picked)) < count; i-- {
			if match(log[i]) {
				picked = append(picked, log[i])
			}
		}
	}
	for _, r := range picked {
		if err := out.Send(eventResp(r)); err != nil {
			return err
		}
	}
	return nil
}

// startIndex is the index of the first record at (inclusive) or after
// (exclusive) the position the options name.
func startIndex(log []*record, o *api.ReadReq_Options_AllOptions, inclusive bool) int {
	switch {
	case o.GetStart() != nil:
		return 0
	case o.GetEnd() != nil:
		return len(log)
	}
	p := o.GetPosition().GetCommitPosition()
	return sort.Search(len(log), func(i int) bool {
		if inclusive {
			return log[i].position >= p
		}
		return log[i].position > p
	})
}

// subscribe serves a catch-up subscription to $all: the confirmation, then
// every matching event after the start, a checkpoint whenever the filter
// has skipped a window of records, caught-up on reaching the end, and live
// events after that, until the client goes or DropSubscriptions.
func (s *Server) subscribe(o *api.ReadReq_Options_AllOptions, f *api.ReadReq_Options_FilterOptions, match func(*record) bool, out api.Streams_ReadServer) error {
	s.mu.Lock()
	s.subscriptions++
	drop := s.drop
	// Subscribing from a position is exclusive: the client names the last
	// event it has.
	next := startIndex(s.log, o, false)
	s.mu.Unlock()

	interval := math.MaxInt
	if f != nil {
		interval = int(max(f.GetMax(), 1) * max(f.GetCheckpointIntervalMultiplier(), 1))
	}
	if err := out.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	var (
		skipped  int     // records examined and not sent since the last message
		examined *record // the last record examined
		caughtUp bool
	)
	for {
		s.mu.Lock()
		log, changed := s.log, s.changed
		s.mu.Unlock()
		for ; next < len(log); next++ {
			select {
			case <-drop:
				return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
			default:
			}
			r := log[next]
			examined = r
			if !match(r) {
				if skipped++; skipped >= interval {
					if err := out.Send(checkpoint(r)); err != nil {
						return err
					}
					skipped = 0
				}
				continue
			}
			if err := out.Send(eventResp(r)); err != nil {
				return err
			}
			skipped = 0
		}
		if !caughtUp {
			if skipped > 0 && f != nil {
				if err := out.Send(checkpoint(examined)); err != nil {
					return err
				}
				skipped = 0
			}
			if err := out.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
			caughtUp = true
		}
		select {
		case <-out.Context().Done():
			return out.Context().Err()
		case <-drop:
			return status.Error(codes.Unavailable, "esdbtest: subscription dropped")
		case <-changed:
		}
	}
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

func checkpoint(r *record) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: r.position, PreparePosition: r.position,
	}}}
}

func eventResp(r *record) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               wireUUID(r.id),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
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
