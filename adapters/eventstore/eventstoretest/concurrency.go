package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// concurrentOneWinnerPerRevision races writers for each revision of one
// stream: optimistic concurrency must let exactly one through each time.
func concurrentOneWinnerPerRevision(t *testing.T, s eventstore.Store) {
	const writers, rounds = 8, 50
	stream := streamName(t, "contended")
	for round := range rounds {
		var expected eventstore.ExpectedRevision = eventstore.NoStream{}
		if round > 0 {
			expected = eventstore.Revision(round - 1)
		}
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				_, errs[w] = s.Append(context.Background(), stream, expected, event("Raced", w))
			})
		}
		close(start)
		wg.Wait()

		wins := 0
		for w, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, eventstore.ErrWrongExpectedRevision):
				t.Fatalf("round %d writer %d: got error %v, want none or ErrWrongExpectedRevision", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d (expected %v): got %d winners, want exactly 1", round, expected, wins)
		}
	}
	wantStreamLength(t, s, stream, rounds)
}

// concurrentAnyAllSucceed has writers append to one stream with expected
// revision Any: none may fail, and each event gets its own revision.
func concurrentAnyAllSucceed(t *testing.T, s eventstore.Store) {
	const writers, appends = 8, 25
	stream := streamName(t, "hot")
	revisions := make([][]uint64, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				r, err := s.Append(context.Background(), stream, eventstore.Any{}, event("Any", i))
				if err != nil {
					errs[w] = fmt.Errorf("append %d: %w", i, err)
					return
				}
				revisions[w] = append(revisions[w], r.NextExpectedRevision)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("appends with Any: got %v, want no error", err)
	}
	seen := map[uint64]bool{}
	for _, revs := range revisions {
		for _, r := range revs {
			if seen[r] || r >= writers*appends {
				t.Fatalf("revision %d: got it twice or out of range, want each of 0..%d once", r, writers*appends-1)
			}
			seen[r] = true
		}
	}
	wantStreamLength(t, s, stream, writers*appends)
}

// concurrentWritersSubscriberSeesAllOnce is the global-order guarantee under
// load: many writers commit in whatever order they finish while a
// subscriber follows from the start; it must see every event exactly once,
// in strictly increasing position order.
func concurrentWritersSubscriberSeesAllOnce(t *testing.T, s eventstore.Store) {
	const writers, perWriter, streamsPerWriter = 16, 2000, 20
	const total = writers * perWriter
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()

	type result struct {
		seen *Once
		err  error
	}
	subscribed := make(chan result, 1)
	go func() {
		seen := new(Once)
		errEnough := errors.New("all events seen")
		err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
			for _, e := range b.Events {
				if err := seen.Add(e); err != nil {
					return err
				}
			}
			if seen.Len() >= total {
				return errEnough
			}
			return nil
		})
		if errors.Is(err, errEnough) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("after %d of %d events: %w", seen.Len(), total, err)
		}
		subscribed <- result{seen, err}
	}()

	appended := make([][]uuid.UUID, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { appended[w], errs[w] = write(ctx, s, w, perWriter, streamsPerWriter) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("writers: got %v, want no error", err)
	}
	wrote := time.Since(began)

	r := <-subscribed
	if r.err != nil {
		t.Fatalf("subscriber: %v", r.err)
	}
	for w, evs := range appended {
		for i, id := range evs {
			if !r.seen.Seen(id) {
				t.Fatalf("writer %d event %d (%s): not delivered, want every appended event", w, i, id)
			}
		}
	}
	if got := r.seen.Len(); got != total {
		t.Fatalf("subscriber: got %d events, want %d", got, total)
	}
	t.Logf("%d writers appended %d events in %v; the subscriber had them all after %v",
		writers, total, wrote.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// write appends n events one at a time, round-robin over the writer's own
// streams, with exact expected revisions, and returns their ids.
func write(ctx context.Context, s eventstore.Store, writer, n, streams int) ([]uuid.UUID, error) {
	next := make([]uint64, streams)
	out := make([]uuid.UUID, 0, n)
	for i := range n {
		k := i % streams
		var expected eventstore.ExpectedRevision = eventstore.NoStream{}
		if next[k] > 0 {
			expected = eventstore.Revision(next[k] - 1)
		}
		e := event("Written", i)
		if _, err := s.Append(ctx, fmt.Sprintf("writer%02d-stream%02d", writer, k), expected, e); err != nil {
			return out, fmt.Errorf("writer %d append %d: %w", writer, i, err)
		}
		next[k]++
		out = append(out, e.ID)
	}
	return out, nil
}
