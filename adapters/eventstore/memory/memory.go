// Package memory is an event store in memory, for unit tests of command
// handlers and process managers. It passes the same contract suite as the
// real stores, so code tested against it behaves the same on them.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
)

const defaultBatchSize = 500

var _ eventstore.Store = (*Store)(nil)

// Store is an eventstore.Store in memory. The zero value is not usable; call
// New. The n-th event appended (from 1) has Position{Commit: n, Prepare: n}.
type Store struct {
	mu      sync.Mutex
	events  []eventstore.RecordedEvent // in global order: events[i] is at i+1
	streams map[string][]int           // indexes into events, by revision
	byID    map[uuid.UUID]int          // index into events
	// changed is closed and replaced by every append, waking all live
	// subscriptions at once.
	changed chan struct{}
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		streams: make(map[string][]int),
		byID:    make(map[uuid.UUID]int),
		changed: make(chan struct{}),
	}
}

// Append implements eventstore.Store.
func (s *Store) Append(_ context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	if _, ok := s.byID[events[0].ID]; ok {
		return s.earlierAppend(stream, events)
	}
	current := s.streams[stream]
	if !matches(expected, len(current)) {
		actual := "no stream"
		if len(current) > 0 {
			actual = fmt.Sprintf("revision %d", len(current)-1)
		}
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: expected %v, stream at %s: %w",
			stream, expected, actual, eventstore.ErrWrongExpectedRevision)
	}
	for _, e := range events[1:] {
		if _, ok := s.byID[e.ID]; ok {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, eventstore.ErrIdempotency)
		}
	}

	now := time.Now().UTC()
	for _, e := range events {
		n := uint64(len(s.events) + 1)
		s.byID[e.ID] = len(s.events)
		s.streams[stream] = append(s.streams[stream], len(s.events))
		s.events = append(s.events, eventstore.RecordedEvent{
			ID:        e.ID,
			StreamID:  stream,
			Revision:  uint64(len(s.streams[stream]) - 1),
			Position:  domain.Position{Commit: n, Prepare: n},
			Type:      e.Type,
			Data:      bytes.Clone(e.Data),
			Metadata:  bytes.Clone(e.Metadata),
			CreatedAt: now,
		})
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return resultOf(s.events[len(s.events)-1]), nil
}

// earlierAppend answers an append whose first id is stored: the original
// result if it is the same append again, else ErrIdempotency.
func (s *Store) earlierAppend(stream string, events []eventstore.EventData) (eventstore.AppendResult, error) {
	first := s.events[s.byID[events[0].ID]]
	var last eventstore.RecordedEvent
	for i, e := range events {
		j, ok := s.byID[e.ID]
		if !ok || s.events[j].StreamID != stream || s.events[j].Revision != first.Revision+uint64(i) {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, eventstore.ErrIdempotency)
		}
		last = s.events[j]
	}
	return resultOf(last), nil
}

func resultOf(last eventstore.RecordedEvent) eventstore.AppendResult {
	return eventstore.AppendResult{NextExpectedRevision: last.Revision, Position: last.Position}
}

// matches reports whether a stream of length n satisfies expected.
func matches(expected eventstore.ExpectedRevision, n int) bool {
	switch e := expected.(type) {
	case eventstore.Any:
		return true
	case eventstore.NoStream:
		return n == 0
	case eventstore.StreamExists:
		return n > 0
	case eventstore.Revision:
		return n > 0 && uint64(e) == uint64(n-1)
	}
	return false
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(_ context.Context, stream string, opts eventstore.ReadOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Max < 0 {
		return nil, fmt.Errorf("read %s: negative Max %d", stream, opts.Max)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	indexes := s.streams[stream]
	if len(indexes) == 0 {
		return nil, fmt.Errorf("read %s: %w", stream, eventstore.ErrStreamNotFound)
	}

	out := []eventstore.RecordedEvent{}
	add := func(i int) bool {
		out = append(out, clone(s.events[indexes[i]]))
		return opts.Max == 0 || len(out) < opts.Max
	}
	n := uint64(len(indexes))
	switch {
	case !opts.Backwards && !opts.FromEnd:
		for r := opts.From; r < n && add(int(r)); r++ {
		}
	case opts.Backwards:
		r := n - 1
		if !opts.FromEnd {
			r = min(opts.From, n-1)
		}
		for ; r < n && add(int(r)); r-- { // r wraps past zero to a huge value
		}
	}
	return out, nil
}

// SubscribeToAll implements eventstore.Store.
func (s *Store) SubscribeToAll(ctx context.Context, from domain.Position, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	size := positive.Or(opts.BatchSize, defaultBatchSize)
	caughtUp := false // the last batch handed over was CaughtUp, and nothing since
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		events, atEnd, changed := s.readAll(from, size)
		// An empty CaughtUp batch is sent once on reaching the end, not on
		// every wake-up that finds nothing new.
		if len(events) > 0 || (atEnd && !caughtUp) {
			b := eventstore.Batch{Events: events, Checkpoint: from, CaughtUp: atEnd}
			if n := len(events); n > 0 {
				b.Checkpoint = events[n-1].Position
			}
			if err := h(ctx, b); err != nil {
				return err
			}
			from, caughtUp = b.Checkpoint, atEnd
		}
		if !atEnd {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// readAll returns up to size events after from, whether they reach the end,
// and the channel the next append closes.
func (s *Store) readAll(from domain.Position, size int) ([]eventstore.RecordedEvent, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := sort.Search(len(s.events), func(i int) bool { return from.Less(s.events[i].Position) })
	end := min(start+size, len(s.events))
	events := make([]eventstore.RecordedEvent, 0, end-start)
	for _, e := range s.events[start:end] {
		events = append(events, clone(e))
	}
	return events, end == len(s.events), s.changed
}

// clone copies an event's bytes so that callers cannot change what is stored.
func clone(e eventstore.RecordedEvent) eventstore.RecordedEvent {
	e.Data = bytes.Clone(e.Data)
	e.Metadata = bytes.Clone(e.Metadata)
	return e
}
