// Package eventstoretest is the contract every eventstore.Store passes: one
// suite, run by each implementation's tests against a fresh store per test.
package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// Run runs the contract against stores made by newStore, which must return
// an empty store that lives until t ends. Subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s eventstore.Store)
	}{
		{"AppendNoStreamToNewStream", appendNoStreamToNewStream},
		{"AppendNoStreamToExistingStreamFails", appendNoStreamToExistingStreamFails},
		{"AppendAny", appendAny},
		{"AppendStreamExists", appendStreamExists},
		{"AppendExactRevision", appendExactRevision},
		{"AppendRevisionsAndPositionsIncrease", appendRevisionsAndPositionsIncrease},
		{"AppendIdempotentRetry", appendIdempotentRetry},
		{"AppendIdempotentRetryOfLaterAppend", appendIdempotentRetryOfLaterAppend},
		{"AppendPartialReuseOfIDsFails", appendPartialReuseOfIDsFails},
		{"AppendInvalidInputStoresNothing", appendInvalidInputStoresNothing},
		{"ReadForwards", readForwards},
		{"ReadBackwards", readBackwards},
		{"ReadMissingStream", readMissingStream},
		{"ReadRoundTripsFields", readRoundTripsFields},
		{"SubscribeFromStart", subscribeFromStart},
		{"SubscribeFromMiddleIsExclusive", subscribeFromMiddleIsExclusive},
		{"SubscribeEmptyStoreIsCaughtUp", subscribeEmptyStoreIsCaughtUp},
		{"SubscribeCatchUpThenLive", subscribeCatchUpThenLive},
		{"SubscribeCancelReturnsCtxErr", subscribeCancelReturnsCtxErr},
		{"SubscribeHandlerErrorEndsIt", subscribeHandlerErrorEndsIt},
		{"ConcurrentOneWinnerPerRevision", concurrentOneWinnerPerRevision},
		{"ConcurrentAnyAllSucceed", concurrentAnyAllSucceed},
		{"ConcurrentWritersSubscriberSeesAllOnce", concurrentWritersSubscriberSeesAllOnce},
		{"SealedValuesStayOpaque", sealedValuesStayOpaque},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

func appendNoStreamToNewStream(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	r := mustAppend(t, s, stream, eventstore.NoStream{}, events(3)...)
	if got, want := r.NextExpectedRevision, uint64(2); got != want {
		t.Errorf("NextExpectedRevision: got %d, want %d", got, want)
	}
	if r.Position.IsZero() {
		t.Errorf("Position: got zero, want the last event's position")
	}
	wantRevisions(t, "ReadStream", mustRead(t, s, stream, eventstore.ReadOptions{}), 0, 1, 2)
}

func appendNoStreamToExistingStreamFails(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	mustAppend(t, s, stream, eventstore.NoStream{}, events(1)...)
	_, err := s.Append(context.Background(), stream, eventstore.NoStream{}, events(1)...)
	wantErr(t, "Append NoStream to an existing stream", err, eventstore.ErrWrongExpectedRevision, domain.ErrConcurrency)
	wantStreamLength(t, s, stream, 1)
}

func appendAny(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	if got, want := mustAppend(t, s, stream, eventstore.Any{}, events(1)...).NextExpectedRevision, uint64(0); got != want {
		t.Errorf("Any on a new stream: got NextExpectedRevision %d, want %d", got, want)
	}
	if got, want := mustAppend(t, s, stream, eventstore.Any{}, events(2)...).NextExpectedRevision, uint64(2); got != want {
		t.Errorf("Any on an existing stream: got NextExpectedRevision %d, want %d", got, want)
	}
	wantStreamLength(t, s, stream, 3)
}

func appendStreamExists(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	_, err := s.Append(context.Background(), stream, eventstore.StreamExists{}, events(1)...)
	wantErr(t, "Append StreamExists to a new stream", err, eventstore.ErrWrongExpectedRevision)
	wantStreamLength(t, s, stream, 0)

	mustAppend(t, s, stream, eventstore.NoStream{}, events(1)...)
	if got, want := mustAppend(t, s, stream, eventstore.StreamExists{}, events(1)...).NextExpectedRevision, uint64(1); got != want {
		t.Errorf("StreamExists on an existing stream: got NextExpectedRevision %d, want %d", got, want)
	}
}

func appendExactRevision(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	_, err := s.Append(context.Background(), stream, eventstore.Revision(0), events(1)...)
	wantErr(t, "Append Revision(0) to a new stream", err, eventstore.ErrWrongExpectedRevision)

	mustAppend(t, s, stream, eventstore.NoStream{}, events(2)...)
	if got, want := mustAppend(t, s, stream, eventstore.Revision(1), events(1)...).NextExpectedRevision, uint64(2); got != want {
		t.Errorf("Append Revision(1): got NextExpectedRevision %d, want %d", got, want)
	}
	for _, stale := range []eventstore.Revision{0, 1, 3, 100} {
		_, err := s.Append(context.Background(), stream, stale, events(1)...)
		wantErr(t, "Append "+stale.String()+" to a stream at revision 2", err, eventstore.ErrWrongExpectedRevision, domain.ErrConcurrency)
	}
	wantStreamLength(t, s, stream, 3)
}

func appendRevisionsAndPositionsIncrease(t *testing.T, s eventstore.Store) {
	streams := []string{streamName(t, "a"), streamName(t, "b"), streamName(t, "c")}
	var last domain.Position
	next := map[string]uint64{}
	for i := range 12 {
		stream := streams[i%len(streams)]
		n := 1 + i%3
		r := mustAppend(t, s, stream, eventstore.Any{}, events(n)...)
		if !last.Less(r.Position) {
			t.Fatalf("append %d: got position %v, want after the previous append's %v", i, r.Position, last)
		}
		if got, want := r.NextExpectedRevision, next[stream]+uint64(n)-1; got != want {
			t.Fatalf("append %d to %s: got NextExpectedRevision %d, want %d", i, stream, got, want)
		}
		next[stream] += uint64(n)
		last = r.Position
	}
	for _, stream := range streams {
		got := mustRead(t, s, stream, eventstore.ReadOptions{})
		for i, e := range got {
			if e.Revision != uint64(i) {
				t.Errorf("%s event %d: got revision %d, want %d", stream, i, e.Revision, i)
			}
			if i > 0 && !got[i-1].Position.Less(e.Position) {
				t.Errorf("%s event %d: got position %v, want after %v", stream, i, e.Position, got[i-1].Position)
			}
		}
	}
}

func appendIdempotentRetry(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	evs := events(2)
	first := mustAppend(t, s, stream, eventstore.NoStream{}, evs...)
	// A retry repeats the request: the same expected revision, or Any.
	for _, expected := range []eventstore.ExpectedRevision{eventstore.NoStream{}, eventstore.Any{}} {
		if got := mustAppend(t, s, stream, expected, evs...); got != first {
			t.Errorf("retry with %v: got %+v, want the original result %+v", expected, got, first)
		}
	}
	later := events(1)
	mustAppend(t, s, stream, eventstore.Revision(1), later...)
	if got := mustAppend(t, s, stream, eventstore.NoStream{}, evs...); got != first {
		t.Errorf("retry after another append: got %+v, want the original result %+v", got, first)
	}
	got := recordedIDs(mustRead(t, s, stream, eventstore.ReadOptions{}))
	want := append(ids(evs), later[0].ID)
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("stream: got ids %v, want each stored once: %v", got, want)
	}
}

func appendIdempotentRetryOfLaterAppend(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	mustAppend(t, s, stream, eventstore.NoStream{}, events(1)...)
	second := events(2)
	r := mustAppend(t, s, stream, eventstore.Revision(0), second...)
	if got := mustAppend(t, s, stream, eventstore.Revision(0), second...); got != r {
		t.Errorf("retry: got %+v, want the original result %+v", got, r)
	}
	wantStreamLength(t, s, stream, 3)
}

func appendPartialReuseOfIDsFails(t *testing.T, s eventstore.Store) {
	stream, other := streamName(t, "a"), streamName(t, "b")
	stored := events(2)
	mustAppend(t, s, stream, eventstore.NoStream{}, stored...)
	fresh := event("Fresh", 9)
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedRevision
		events   []eventstore.EventData
	}{
		{"stored id then new", stream, eventstore.Any{}, []eventstore.EventData{stored[0], fresh}},
		{"new id then stored", stream, eventstore.Any{}, []eventstore.EventData{fresh, stored[0]}},
		{"new id then stored, exact revision", stream, eventstore.Revision(1), []eventstore.EventData{fresh, stored[1]}},
		{"stored ids swapped", stream, eventstore.Any{}, []eventstore.EventData{stored[1], stored[0]}},
		{"stored ids in another stream", other, eventstore.Any{}, stored},
		{"stored ids in another stream, no stream", other, eventstore.NoStream{}, stored},
	}
	for _, c := range cases {
		_, err := s.Append(context.Background(), c.stream, c.expected, c.events...)
		wantErr(t, c.name, err, eventstore.ErrIdempotency)
	}
	wantStreamLength(t, s, stream, 2)
	wantStreamLength(t, s, other, 0)
	// The new id was not stored by the failed appends.
	mustAppend(t, s, other, eventstore.NoStream{}, fresh)
}

func appendInvalidInputStoresNothing(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	valid := event("Valid", 1)
	with := func(change func(*eventstore.EventData)) []eventstore.EventData {
		e := event("Valid", 2)
		change(&e)
		return []eventstore.EventData{valid, e}
	}
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedRevision
		events   []eventstore.EventData
	}{
		{"empty stream name", "", eventstore.Any{}, []eventstore.EventData{valid}},
		{"no events", stream, eventstore.Any{}, nil},
		{"no expected revision", stream, nil, []eventstore.EventData{valid}},
		{"no id", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.ID = uuid.Nil })},
		{"repeated id", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.ID = valid.ID })},
		{"no type", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.Type = "" })},
		{"data not JSON", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.Data = []byte(`{"a":`) })},
		{"no data", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.Data = nil })},
		{"metadata not JSON", stream, eventstore.Any{}, with(func(e *eventstore.EventData) { e.Metadata = []byte(`nope`) })},
	}
	for _, c := range cases {
		_, err := s.Append(context.Background(), c.stream, c.expected, c.events...)
		wantErr(t, c.name, err, eventstore.ErrInvalidAppend)
	}
	wantStreamLength(t, s, stream, 0)
	// None of the rejected appends kept the valid event's id.
	mustAppend(t, s, stream, eventstore.NoStream{}, valid)
}

func readForwards(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	mustAppend(t, s, stream, eventstore.NoStream{}, events(5)...)
	mustAppend(t, s, streamName(t, "ab"), eventstore.NoStream{}, events(2)...) // a neighbour not to mix in
	cases := []struct {
		opts eventstore.ReadOptions
		want []uint64
	}{
		{eventstore.ReadOptions{}, []uint64{0, 1, 2, 3, 4}},
		{eventstore.ReadOptions{From: 2}, []uint64{2, 3, 4}},
		{eventstore.ReadOptions{From: 2, Max: 2}, []uint64{2, 3}},
		{eventstore.ReadOptions{Max: 1}, []uint64{0}},
		{eventstore.ReadOptions{Max: 10}, []uint64{0, 1, 2, 3, 4}},
		{eventstore.ReadOptions{From: 5}, nil},
		{eventstore.ReadOptions{FromEnd: true}, nil},
	}
	for _, c := range cases {
		got := mustRead(t, s, stream, c.opts)
		wantRevisions(t, "ReadStream forwards "+formatOpts(c.opts), got, c.want...)
	}
}

func readBackwards(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	mustAppend(t, s, stream, eventstore.NoStream{}, events(5)...)
	cases := []struct {
		opts eventstore.ReadOptions
		want []uint64
	}{
		{eventstore.ReadOptions{Backwards: true, FromEnd: true}, []uint64{4, 3, 2, 1, 0}},
		{eventstore.ReadOptions{Backwards: true, FromEnd: true, Max: 2}, []uint64{4, 3}},
		{eventstore.ReadOptions{Backwards: true, From: 2}, []uint64{2, 1, 0}},
		{eventstore.ReadOptions{Backwards: true, From: 3, Max: 2}, []uint64{3, 2}},
		{eventstore.ReadOptions{Backwards: true, From: 0}, []uint64{0}},
		{eventstore.ReadOptions{Backwards: true, From: 99}, []uint64{4, 3, 2, 1, 0}},
	}
	for _, c := range cases {
		got := mustRead(t, s, stream, c.opts)
		wantRevisions(t, "ReadStream backwards "+formatOpts(c.opts), got, c.want...)
	}
}

func readMissingStream(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, streamName(t, "present"), eventstore.NoStream{}, events(1)...)
	for _, opts := range []eventstore.ReadOptions{{}, {Backwards: true, FromEnd: true}, {From: 3}} {
		got, err := s.ReadStream(context.Background(), streamName(t, "missing"), opts)
		wantErr(t, "ReadStream of a missing stream "+formatOpts(opts), err, eventstore.ErrStreamNotFound)
		if len(got) != 0 {
			t.Errorf("ReadStream of a missing stream: got %d events, want none", len(got))
		}
	}
}

func readRoundTripsFields(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	in := []eventstore.EventData{
		{ID: uuid.New(), Type: "UserInvited.v1", Data: []byte(`{"email": "a@example.com", "roles": ["Admin"], "n": 1.5}`), Metadata: []byte(`{"actor": "u1", "correlation_id": "c1"}`)},
		{ID: uuid.New(), Type: "UserRemoved.v1", Data: []byte(`{}`)}, // no metadata
	}
	before := time.Now()
	r := mustAppend(t, s, stream, eventstore.NoStream{}, in...)
	got := mustRead(t, s, stream, eventstore.ReadOptions{})
	if len(got) != len(in) {
		t.Fatalf("ReadStream: got %d events, want %d", len(got), len(in))
	}
	for i, e := range got {
		w := in[i]
		if e.ID != w.ID || e.StreamID != stream || e.Type != w.Type || e.Revision != uint64(i) {
			t.Errorf("event %d: got id %s stream %q type %q revision %d, want %s %q %q %d",
				i, e.ID, e.StreamID, e.Type, e.Revision, w.ID, stream, w.Type, i)
		}
		if !jsonEqual(e.Data, w.Data) {
			t.Errorf("event %d data: got %s, want %s", i, e.Data, w.Data)
		}
		if !jsonEqual(e.Metadata, w.Metadata) {
			t.Errorf("event %d metadata: got %s, want %s", i, e.Metadata, w.Metadata)
		}
		if e.CreatedAt.Before(before.Add(-time.Minute)) || e.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("event %d CreatedAt: got %v, want about %v", i, e.CreatedAt, before)
		}
	}
	if got, want := got[1].Position, r.Position; got != want {
		t.Errorf("last event's position: got %v, want the append's %v", got, want)
	}
	if !got[0].Position.Less(got[1].Position) {
		t.Errorf("positions: got %v then %v, want increasing", got[0].Position, got[1].Position)
	}
}

func subscribeFromStart(t *testing.T, s eventstore.Store) {
	var want []uuid.UUID
	for i := range 4 {
		evs := events(1 + i%3)
		mustAppend(t, s, streamName(t, string(rune('a'+i%3))), eventstore.Any{}, evs...)
		want = append(want, ids(evs)...)
	}
	sub := subscribe(t, s, domain.Position{}, 3)
	got, batches := sub.collect(t, len(want))
	wantSameOrder(t, recordedIDs(got), want)
	for i, b := range batches {
		if len(b.Events) > 3 {
			t.Errorf("batch %d: got %d events, want at most the batch size 3", i, len(b.Events))
		}
		if b.CaughtUp && i < len(batches)-1 {
			t.Errorf("batch %d: got CaughtUp before all %d stored events were delivered", i, len(want))
		}
		if n := len(b.Events); n > 0 && b.Checkpoint != b.Events[n-1].Position {
			t.Errorf("batch %d: got checkpoint %v, want its last event's position %v", i, b.Checkpoint, b.Events[n-1].Position)
		}
	}
	wantIncreasing(t, got)
}

func subscribeFromMiddleIsExclusive(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	evs := events(6)
	for _, e := range evs {
		mustAppend(t, s, stream, eventstore.Any{}, e)
	}
	all := mustRead(t, s, stream, eventstore.ReadOptions{})
	sub := subscribe(t, s, all[2].Position, 0)
	got, _ := sub.collect(t, 3)
	wantSameOrder(t, recordedIDs(got), ids(evs[3:]))
}

func subscribeEmptyStoreIsCaughtUp(t *testing.T, s eventstore.Store) {
	sub := subscribe(t, s, domain.Position{}, 0)
	b := sub.next(t)
	if !b.CaughtUp || len(b.Events) != 0 {
		t.Errorf("first batch on an empty store: got CaughtUp %v with %d events, want CaughtUp with none", b.CaughtUp, len(b.Events))
	}
}

func subscribeCatchUpThenLive(t *testing.T, s eventstore.Store) {
	stream := streamName(t, "a")
	old := events(2)
	mustAppend(t, s, stream, eventstore.NoStream{}, old...)
	sub := subscribe(t, s, domain.Position{}, 0)
	got, _ := sub.collect(t, 2)
	wantSameOrder(t, recordedIDs(got), ids(old))

	var live []eventstore.EventData
	for i := range 3 { // one at a time, each woken separately
		e := event("Live", i)
		mustAppend(t, s, stream, eventstore.Revision(1+i), e)
		live = append(live, e)
		more, _ := sub.collect(t, 1)
		got = append(got, more...)
	}
	wantSameOrder(t, recordedIDs(got), append(ids(old), ids(live)...))
	wantIncreasing(t, got)
}

func subscribeCancelReturnsCtxErr(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, streamName(t, "a"), eventstore.NoStream{}, events(1)...)
	sub := subscribe(t, s, domain.Position{}, 0)
	sub.collect(t, 1)
	// Caught up: the subscription now waits for appends.
	if err := sub.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeToAll after cancel: got %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeToAll with an ended context: got %v, want context.Canceled", err)
	}
}

func subscribeHandlerErrorEndsIt(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, streamName(t, "a"), eventstore.NoStream{}, events(3)...)
	boom := errors.New("boom")
	calls := 0
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 1}, func(context.Context, eventstore.Batch) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("SubscribeToAll with a failing handler: got %v, want the handler's error", err)
	}
	if calls != 1 {
		t.Errorf("handler calls: got %d, want 1", calls)
	}
}

func wantSameOrder(t *testing.T, got, want []uuid.UUID) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s (got %v, want %v)", i, got[i], want[i], got, want)
		}
	}
}

func wantIncreasing(t *testing.T, evs []eventstore.RecordedEvent) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if !evs[i-1].Position.Less(evs[i].Position) {
			t.Fatalf("event %d: got position %v after %v, want strictly increasing", i, evs[i].Position, evs[i-1].Position)
		}
	}
}

func formatOpts(o eventstore.ReadOptions) string { return fmt.Sprintf("%+v", o) }
