package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
)

func starts(prefix string, n int) []eventstore.StreamStart {
	out := make([]eventstore.StreamStart, n)
	for i := range out {
		out[i] = eventstore.StreamStart{Stream: fmt.Sprintf("%s-%d", prefix, i), Event: newEvent()}
	}
	return out
}

// firstEventID is the id of the first event of stream, failing the test if
// the stream does not hold exactly one event.
func firstEventID(t *testing.T, s eventstore.Store, stream string) [16]byte {
	t.Helper()
	events, err := s.ReadStream(context.Background(), stream, eventstore.ReadOptions{})
	if err != nil || len(events) != 1 {
		t.Fatalf("%s: got %d events (%v), want exactly 1", stream, len(events), err)
	}
	return events[0].ID
}

func TestStartStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("starts the new streams and leaves the existing ones alone", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		all := starts("acct", 3)
		if _, err := s.Append(ctx, all[1].Stream, eventstore.NoStream{}, newEvent()); err != nil {
			t.Fatal(err)
		}
		before := firstEventID(t, s, all[1].Stream)
		started, err := s.StartStreams(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{true, false, true}; fmt.Sprint(started) != fmt.Sprint(want) {
			t.Errorf("started = %v, want %v", started, want)
		}
		for i, st := range all {
			got := firstEventID(t, s, st.Stream)
			if i == 1 && got != before {
				t.Errorf("%s: its first event was replaced", st.Stream)
			}
			if i != 1 && got != st.Event.ID {
				t.Errorf("%s: first event %x, want the started one %x", st.Stream, got, st.Event.ID)
			}
		}
	})

	t.Run("a retried call stores nothing twice and starts nothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		all := starts("acct", 4)
		if _, err := s.StartStreams(ctx, all); err != nil {
			t.Fatal(err)
		}
		started, err := s.StartStreams(ctx, all)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		for i, ok := range started {
			if ok {
				t.Errorf("retry started %s again", all[i].Stream)
			}
			firstEventID(t, s, all[i].Stream)
		}
	})

	t.Run("two callers racing for the same streams: one first event each, one winner each", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		const n = 2000
		a, b := starts("acct", n), starts("acct", n)
		// b names the streams in the opposite order: taken in call order,
		// their locks would deadlock.
		slices.Reverse(b)
		var wg sync.WaitGroup
		var gotA, gotB []bool
		var errA, errB error
		wg.Go(func() { gotA, errA = s.StartStreams(ctx, a) })
		wg.Go(func() { gotB, errB = s.StartStreams(ctx, b) })
		wg.Wait()
		if errA != nil || errB != nil {
			t.Fatalf("StartStreams: %v, %v", errA, errB)
		}
		for i := range n {
			j := n - 1 - i // the same stream in b
			if gotA[i] == gotB[j] {
				t.Errorf("%s: started by a=%v and b=%v, want exactly one", a[i].Stream, gotA[i], gotB[j])
			}
			id := firstEventID(t, s, a[i].Stream)
			if (gotA[i] && id != a[i].Event.ID) || (gotB[j] && id != b[j].Event.ID) {
				t.Errorf("%s: the first event is not the winner's", a[i].Stream)
			}
		}
	})

	t.Run("an invalid call writes nothing", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		all := starts("acct", 2)
		dup := append(all, eventstore.StreamStart{Stream: all[0].Stream, Event: newEvent()})
		if _, err := s.StartStreams(ctx, dup); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("a stream twice: got %v, want ErrInvalidAppend", err)
		}
		bad := []eventstore.StreamStart{all[1], {Stream: "", Event: newEvent()}}
		if _, err := s.StartStreams(ctx, bad); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("an empty stream name: got %v, want ErrInvalidAppend", err)
		}
		for _, st := range all {
			if _, err := s.ReadStream(ctx, st.Stream, eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
				t.Errorf("%s: got %v, want no stream", st.Stream, err)
			}
		}
	})
}

var _ eventstore.StreamStarter = (*postgres.Store)(nil)
