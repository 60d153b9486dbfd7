package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

func TestContract(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store {
		return newStore(t)
	})
}

func newStore(t *testing.T, opts ...postgres.Option) *postgres.Store {
	_, s := newPoolStore(t, opts...)
	return s
}

// newPoolStore answers a store on a fresh database and its pool.
func newPoolStore(t *testing.T, opts ...postgres.Option) (*pgxpool.Pool, *postgres.Store) {
	pool, _ := pgtest.NewService(t)
	return pool, storeOn(t, pool, opts...)
}

// storeOn answers a store on pool, closed at the end of the test.
func storeOn(t *testing.T, pool *pgxpool.Pool, opts ...postgres.Option) *postgres.Store {
	s := postgres.New(pool, opts...)
	t.Cleanup(s.Close) // before the pool closes: cleanups run last-in first-out
	return s
}

// TestSubscriberWaitsForOlderTransaction is the gap a bigserial reader falls
// into: transaction A takes the lower position and is still open when B
// commits a higher one. A reader following positions alone would deliver B,
// move past A's position, and skip A when it commits.
func TestSubscriberWaitsForOlderTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, s := newPoolStore(t)

	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin A: %v", err)
	}
	defer txA.Rollback(ctx)
	a := newEvent()
	posA := appendInTx(t, txA, "a", a)

	b := newEvent()
	rB, err := s.Append(ctx, "b", eventstore.NoStream{}, b)
	if err != nil {
		t.Fatalf("append B: %v", err)
	}
	if posA.Prepare >= rB.Position.Prepare {
		t.Fatalf("sequence numbers: got A %d, B %d, want A lower for this test to mean anything", posA.Prepare, rB.Position.Prepare)
	}

	events := subscribe(t, s)
	// Long enough for many reads: the subscriber polls every few ms while
	// committed events wait behind an open transaction.
	if e, ok := receive(events, 500*time.Millisecond); ok {
		t.Fatalf("while A is open: got event %s at %v, want nothing (B must wait for A)", e.ID, e.Position)
	}

	if err := txA.Commit(ctx); err != nil {
		t.Fatalf("commit A: %v", err)
	}
	wantEvents(t, events, a.ID, b.ID)
}

// TestSubscriberDeliversEventWithLowerPositionCommittedLater covers commit
// order against insertion order: B's transaction began first but inserted
// after A, so A has the lower sequence number, yet B commits first and is
// delivered first. A must still arrive when it commits.
func TestSubscriberDeliversEventWithLowerPositionCommittedLater(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Nothing notifies about transactions committed outside the store: the
	// poll must find A.
	pool, s := newPoolStore(t, postgres.WithPollInterval(100*time.Millisecond))

	txB, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin B: %v", err)
	}
	defer txB.Rollback(ctx)
	// B's id is now the older one. A transaction that takes its id before
	// its events declares itself an event writer first (migration 00021).
	if _, err := txB.Exec(ctx, `SELECT events_mark_writer()`); err != nil {
		t.Fatalf("B marks itself an event writer: %v", err)
	}
	if _, err := txB.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatalf("B takes a transaction id: %v", err)
	}
	txA, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin A: %v", err)
	}
	defer txA.Rollback(ctx)
	a, b := newEvent(), newEvent()
	posA := appendInTx(t, txA, "a", a)
	posB := appendInTx(t, txB, "b", b)
	if posA.Prepare >= posB.Prepare || posB.Commit >= posA.Commit {
		t.Fatalf("positions: got A %v, B %v, want A's sequence lower and B's transaction older", posA, posB)
	}

	if err := txB.Commit(ctx); err != nil {
		t.Fatalf("commit B: %v", err)
	}
	events := subscribe(t, s)
	wantEvents(t, events, b.ID)
	if err := txA.Commit(ctx); err != nil {
		t.Fatalf("commit A: %v", err)
	}
	wantEvents(t, events, a.ID)
}

// TestSubscriberWokenByAnotherProcess has one store append and another,
// whose poll never fires, subscribe: only LISTEN/NOTIFY can wake it.
func TestSubscriberWokenByAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, writer := newPoolStore(t)
	reader := storeOn(t, pool, postgres.WithPollInterval(time.Hour))

	events := subscribe(t, reader)
	for i := range 3 {
		e := newEvent()
		if _, err := writer.Append(ctx, "s", eventstore.Any{}, e); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		wantEvents(t, events, e.ID)
	}
}

// TestAppendAfterAnotherProcessMovedTheStream: a store remembers the
// revisions it appended and then skips the lookup for them, so another
// process appending meanwhile must still make its stale append fail.
func TestAppendAfterAnotherProcessMovedTheStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, a := newPoolStore(t)
	b := storeOn(t, pool)

	if _, err := a.Append(ctx, "s", eventstore.NoStream{}, newEvent()); err != nil {
		t.Fatalf("A appends revision 0: %v", err)
	}
	if _, err := b.Append(ctx, "s", eventstore.Revision(0), newEvent()); err != nil {
		t.Fatalf("B appends revision 1: %v", err)
	}
	_, err := a.Append(ctx, "s", eventstore.Revision(0), newEvent())
	if !errors.Is(err, eventstore.ErrWrongExpectedRevision) {
		t.Fatalf("A appends expecting revision 0 of a stream at 1: got %v, want ErrWrongExpectedRevision", err)
	}
	_, err = a.Append(ctx, "s", eventstore.Revision(3), newEvent())
	if !errors.Is(err, eventstore.ErrWrongExpectedRevision) {
		t.Fatalf("A appends expecting revision 3 of a stream at 1: got %v, want ErrWrongExpectedRevision", err)
	}
	r, err := a.Append(ctx, "s", eventstore.Revision(1), newEvent())
	if err != nil || r.NextExpectedRevision != 2 {
		t.Fatalf("A appends expecting revision 1: got %+v, %v; want revision 2", r, err)
	}
	got, err := b.ReadStream(ctx, "s", eventstore.ReadOptions{})
	if err != nil || len(got) != 3 {
		t.Fatalf("stream: got %d events, %v; want 3", len(got), err)
	}
}

// TestAppendContentPostgreSQLRefuses: valid JSON that jsonb cannot hold,
// and text with a NUL byte, are invalid appends, not store failures.
func TestAppendContentPostgreSQLRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for name, e := range map[string]eventstore.EventData{
		"data with \\u0000": {ID: uuid.New(), Type: "T", Data: []byte(`{"a": "\u0000"}`)},
		"type with NUL":     {ID: uuid.New(), Type: "T\x00", Data: []byte(`{}`)},
	} {
		if _, err := s.Append(ctx, "s", eventstore.Any{}, e); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: got %v, want ErrInvalidAppend", name, err)
		}
	}
	if _, err := s.ReadStream(ctx, "s", eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("stream after refused appends: got %v, want ErrStreamNotFound", err)
	}
}

// TestCloseWithLiveSubscription checks Close returns while a subscription
// (and so the listener) runs, and the subscription still ends with its ctx.
func TestCloseWithLiveSubscription(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	s := postgres.New(pool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error { return nil })
	}()
	time.Sleep(100 * time.Millisecond) // let it subscribe and start listening

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close: still running after 10s, want it to stop the notifier and listener")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeToAll: got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("SubscribeToAll: still running 10s after its ctx ended")
	}
}

func newEvent() eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "Tested", Data: []byte(`{"n": 1}`)}
}

// appendInTx appends inside a transaction the test controls, through the
// same SQL function the store calls.
func appendInTx(t *testing.T, tx pgx.Tx, stream string, e eventstore.EventData) domain.Position {
	t.Helper()
	var status string
	var commit, prepare int64
	err := tx.QueryRow(context.Background(),
		`SELECT status, commit_position, prepare_position FROM append_events($1, -2, $2, $3, $4, $5)`,
		stream, []uuid.UUID{e.ID}, []string{e.Type}, [][]byte{e.Data}, [][]byte{e.Metadata},
	).Scan(&status, &commit, &prepare)
	if err != nil || status != "appended" {
		t.Fatalf("append to %s in a transaction: got status %q, error %v; want appended", stream, status, err)
	}
	return domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
}

// subscribe follows s from the start and hands over its events one by one.
func subscribe(t *testing.T, s *postgres.Store) <-chan eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan eventstore.RecordedEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(ctx context.Context, b eventstore.Batch) error {
			for _, e := range b.Events {
				select {
				case events <- e:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return events
}

func receive(events <-chan eventstore.RecordedEvent, d time.Duration) (eventstore.RecordedEvent, bool) {
	select {
	case e := <-events:
		return e, true
	case <-time.After(d):
		return eventstore.RecordedEvent{}, false
	}
}

// wantEvents fails unless the next events are these, in order, with
// increasing positions.
func wantEvents(t *testing.T, events <-chan eventstore.RecordedEvent, want ...uuid.UUID) {
	t.Helper()
	var last domain.Position
	for i, id := range want {
		e, ok := receive(events, 30*time.Second)
		if !ok {
			t.Fatalf("event %d: got none within 30s, want %s", i, id)
		}
		if e.ID != id {
			t.Fatalf("event %d: got %s at %v, want %s", i, e.ID, e.Position, id)
		}
		if i > 0 && !last.Less(e.Position) {
			t.Fatalf("event %d: got position %v after %v, want increasing", i, e.Position, last)
		}
		last = e.Position
	}
}
