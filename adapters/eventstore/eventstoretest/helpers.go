package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// waitTimeout bounds every wait for a subscription. It is generous: on a
// shared PostgreSQL server another test's open transaction can hold events
// back for a while.
const waitTimeout = 30 * time.Second

// event returns a new event of the given type with a small JSON body.
func event(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:       uuid.New(),
		Type:     typ,
		Data:     []byte(fmt.Sprintf(`{"n": %d, "text": "event %d"}`, n, n)),
		Metadata: []byte(`{"actor": "tester"}`),
	}
}

// events returns n new events.
func events(n int) []eventstore.EventData {
	out := make([]eventstore.EventData, n)
	for i := range out {
		out[i] = event("Happened", i)
	}
	return out
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedRevision, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	r, err := s.Append(context.Background(), stream, expected, evs...)
	if err != nil {
		t.Fatalf("Append(%s, %v, %d events): got error %v, want none", stream, expected, len(evs), err)
	}
	return r
}

func mustRead(t *testing.T, s eventstore.Store, stream string, opts eventstore.ReadOptions) []eventstore.RecordedEvent {
	t.Helper()
	got, err := s.ReadStream(context.Background(), stream, opts)
	if err != nil {
		t.Fatalf("ReadStream(%s, %+v): got error %v, want none", stream, opts, err)
	}
	return got
}

// wantErr fails unless err matches every target.
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want %v", what, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s: got error %v, want one matching %v", what, err, target)
		}
	}
}

// wantRevisions fails unless got holds exactly these revisions, in order.
func wantRevisions(t *testing.T, what string, got []eventstore.RecordedEvent, want ...uint64) {
	t.Helper()
	revs := make([]uint64, len(got))
	for i, e := range got {
		revs[i] = e.Revision
	}
	if want == nil {
		want = []uint64{}
	}
	if !reflect.DeepEqual(revs, want) {
		t.Fatalf("%s: got revisions %v, want %v", what, revs, want)
	}
}

// wantStreamLength fails unless the stream holds exactly n events (n = 0:
// the stream does not exist).
func wantStreamLength(t *testing.T, s eventstore.Store, stream string, n int) {
	t.Helper()
	got, err := s.ReadStream(context.Background(), stream, eventstore.ReadOptions{})
	if n == 0 {
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("ReadStream(%s): got %d events and error %v, want ErrStreamNotFound", stream, len(got), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("ReadStream(%s): got error %v, want %d events", stream, err, n)
	}
	if len(got) != n {
		t.Fatalf("ReadStream(%s): got %d events, want %d", stream, len(got), n)
	}
}

func ids(evs []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func recordedIDs(evs []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// jsonEqual compares JSON by value: stores may reformat what they keep.
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return len(bytes.TrimSpace(a)) == 0 && len(bytes.TrimSpace(b)) == 0
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// subscription runs SubscribeToAll in the background and hands its batches
// to the test.
type subscription struct {
	batches chan eventstore.Batch
	done    chan error
	cancel  context.CancelFunc
}

func subscribe(t *testing.T, s eventstore.Store, from domain.Position, batchSize int) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscription{batches: make(chan eventstore.Batch), done: make(chan error, 1), cancel: cancel}
	go func() {
		sub.done <- s.SubscribeToAll(ctx, from, eventstore.SubscribeOptions{BatchSize: batchSize},
			func(ctx context.Context, b eventstore.Batch) error {
				select {
				case sub.batches <- b:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
	}()
	t.Cleanup(func() { sub.stop(t) })
	return sub
}

// next returns the next batch, failing the test if none comes in time or
// the subscription ends.
func (sub *subscription) next(t *testing.T) eventstore.Batch {
	t.Helper()
	select {
	case b := <-sub.batches:
		return b
	case err := <-sub.done:
		sub.done <- err
		t.Fatalf("subscription ended with %v, want another batch", err)
	case <-time.After(waitTimeout):
		t.Fatalf("no batch within %v", waitTimeout)
	}
	panic("unreachable")
}

// collect reads batches until it has n events and a CaughtUp batch
// after them, and returns the events and the batches.
func (sub *subscription) collect(t *testing.T, n int) ([]eventstore.RecordedEvent, []eventstore.Batch) {
	t.Helper()
	var got []eventstore.RecordedEvent
	var batches []eventstore.Batch
	for {
		b := sub.next(t)
		got = append(got, b.Events...)
		batches = append(batches, b)
		if len(got) > n {
			t.Fatalf("subscription delivered %d events, want %d", len(got), n)
		}
		if len(got) == n && b.CaughtUp {
			return got, batches
		}
	}
}

// stop cancels the subscription and returns what SubscribeToAll returned.
func (sub *subscription) stop(t *testing.T) error {
	t.Helper()
	sub.cancel()
	select {
	case err := <-sub.done:
		sub.done <- err // later calls see it too
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("SubscribeToAll did not return within %v of its context ending", waitTimeout)
		return nil
	}
}

// streamName makes stream names that say which test wrote them.
func streamName(t *testing.T, suffix string) string {
	return strings.ReplaceAll(t.Name(), "/", ".") + "-" + suffix
}

// Once checks what a subscription hands over, event by event: each event
// once, in strictly increasing position order. The zero value is ready.
type Once struct {
	seen map[uuid.UUID]bool
	last domain.Position
}

// Add takes the next event handed over, or answers why it may not come
// now: it came before, or not after the last.
func (o *Once) Add(e eventstore.RecordedEvent) error {
	if o.seen[e.ID] {
		return fmt.Errorf("event %s at %v: got it twice, want once", e.ID, e.Position)
	}
	if !o.last.Less(e.Position) {
		return fmt.Errorf("event %s: got position %v after %v, want strictly increasing", e.ID, e.Position, o.last)
	}
	if o.seen == nil {
		o.seen = make(map[uuid.UUID]bool)
	}
	o.seen[e.ID], o.last = true, e.Position
	return nil
}

// Seen reports whether the event with id was handed over.
func (o *Once) Seen(id uuid.UUID) bool { return o.seen[id] }

// Len is how many events were handed over.
func (o *Once) Len() int { return len(o.seen) }
