package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// TestSubscriberNotHeldBackByTransactionsWithoutEvents: a transaction that
// has an id but writes no events (a projection's batch, the outbox) is
// running while an append commits. The append is delivered while it still
// runs.
func TestSubscriberNotHeldBackByTransactionsWithoutEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, s := newPoolStore(t)

	beginWithID(t, pool, false) // the other transaction

	e := newEvent()
	if _, err := s.Append(ctx, "s", eventstore.NoStream{}, e); err != nil {
		t.Fatal(err)
	}
	events := subscribe(t, s)
	if got, ok := receive(events, 5*time.Second); !ok || got.ID != e.ID {
		t.Fatalf("while a transaction without events runs: got %v (received %t), want event %s", got.ID, ok, e.ID)
	}
}

// TestTransactionThatWroteFirstCannotAppend: a transaction took its id
// without the marker; a subscription then read past it, an append after it
// having been delivered. Were its own append let through, its event would
// sort before the one delivered and be skipped. It is refused; declared
// first, the same sequence is accepted and held back for.
func TestTransactionThatWroteFirstCannotAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, s := newPoolStore(t)
	events := subscribe(t, s)

	late := beginWithID(t, pool, false)
	first := newEvent()
	if _, err := s.Append(ctx, "first", eventstore.NoStream{}, first); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, events, first.ID)

	// Nor can a setting made for the session pass for the marker.
	if _, err := late.Exec(ctx, `SET usersd.events_writer = 'on'`); err != nil {
		t.Fatal(err)
	}
	lateEvent := newEvent()
	_, err := late.Exec(ctx, `SELECT append_events($1, -2, $2, $3, $4, $5)`,
		"late", []uuid.UUID{lateEvent.ID}, []string{lateEvent.Type}, [][]byte{lateEvent.Data}, [][]byte{lateEvent.Metadata})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55000" {
		t.Fatalf("append after the transaction took its id unmarked: got %v, want SQLSTATE 55000 (a subscriber already read past it)", err)
	}

	wantHeldBack(t, s, events, beginWithID(t, pool, true), "declared", "a declared writer")
}

// wantHeldBack appends an event while tx, which took its id before, runs:
// the subscription must receive nothing until tx appends an event of its
// own to stream and commits, and then both, tx's first. what says what tx
// is.
func wantHeldBack(t *testing.T, s *postgres.Store, events <-chan eventstore.RecordedEvent, tx pgx.Tx, stream, what string) {
	t.Helper()
	ctx := context.Background()
	after := newEvent()
	if _, err := s.Append(ctx, "after", eventstore.NoStream{}, after); err != nil {
		t.Fatal(err)
	}
	if e, ok := receive(events, 300*time.Millisecond); ok {
		t.Fatalf("while %s with an older id runs: got %s, want nothing", what, e.ID)
	}
	e := newEvent()
	appendInTx(t, tx, stream, e)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, events, e.ID, after.ID)
}

// TestSubscriberGapFreeUnderMixedLoad runs, for a while, writers that
// declare themselves, take their ids, wait, append and commit or roll back
// at random times (so they commit out of id order), plain appends, and
// transactions that write no events, while a subscriber follows. It must
// receive every committed event exactly once, in increasing order: an
// event skipped because the horizon passed a writer too early is missing.
func TestSubscriberGapFreeUnderMixedLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, s := newPoolStore(t)
	var (
		mu        sync.Mutex
		committed = map[uuid.UUID]bool{}
		received  []eventstore.RecordedEvent
		got       = make(chan struct{}, 1)
	)
	subCtx, stop := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.SubscribeToAll(subCtx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 7}, func(_ context.Context, b eventstore.Batch) error {
			mu.Lock()
			received = append(received, b.Events...)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	defer func() { stop(); <-subDone }()

	runFor := 3 * time.Second
	deadline := time.Now().Add(runFor)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	pause := func(r *rand.Rand) { time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond) }
	for w := range 12 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 19))
			for i := 0; time.Now().Before(deadline); i++ {
				stream := fmt.Sprintf("w%d-%d", w, i)
				e := newEvent()
				var err error
				switch w % 3 {
				case 0: // a declared writer in a transaction of its own
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, `SELECT events_mark_writer()`); err != nil {
							return err
						}
						if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
							return err
						}
						pause(r)
						var status string
						if err := tx.QueryRow(ctx, `SELECT status FROM append_events($1, -2, $2, $3, $4, $5)`,
							stream, []uuid.UUID{e.ID}, []string{e.Type}, [][]byte{e.Data}, [][]byte{e.Metadata}).Scan(&status); err != nil {
							return err
						}
						pause(r)
						if r.IntN(4) == 0 {
							return errRollback
						}
						return nil
					})
					if errors.Is(err, errRollback) {
						continue
					}
				case 1: // the store's own appends
					_, err = s.Append(ctx, stream, eventstore.NoStream{}, e)
				case 2: // a transaction that writes no events, then an append
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
							return err
						}
						pause(r)
						return nil
					})
					if err == nil {
						_, err = s.Append(ctx, stream, eventstore.NoStream{}, e)
					}
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				committed[e.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	wait := time.After(30 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= len(committed) {
			break
		}
		select {
		case <-got:
		case <-wait:
			t.Fatalf("received %d of %d committed events within 30 s of the last commit", n, len(committed))
		}
	}
	time.Sleep(100 * time.Millisecond) // anything more would be a duplicate
	mu.Lock()
	defer mu.Unlock()
	var once eventstoretest.Once
	for i, e := range received {
		if !committed[e.ID] {
			t.Fatalf("event %d (%s): not committed", i, e.ID)
		}
		if err := once.Add(e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if len(received) != len(committed) {
		t.Fatalf("received %d events, committed %d", len(received), len(committed))
	}
	t.Logf("%d committed events, all received in order", len(committed))
}

var errRollback = errors.New("roll back on purpose")

// TestSubscriptionReadsDoNotQueueForTheSharedPool takes every connection of
// the pool appends and queries share, as commands waiting on a busy service
// do, and a subscription still reads: its reads have connections of their
// own, so a visible write does not wait for every command queued before it.
func TestSubscriptionReadsDoNotQueueForTheSharedPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := pgtest.NewService(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := storeOn(t, pool)

	e := newEvent()
	if _, err := s.Append(ctx, "s", eventstore.NoStream{}, e); err != nil {
		t.Fatal(err)
	}
	for range cfg.MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	events := subscribe(t, s)
	if got, ok := receive(events, 5*time.Second); !ok || got.ID != e.ID {
		t.Fatalf("with the shared pool taken: got %v (received %t), want event %s", got.ID, ok, e.ID)
	}
}

// beginWithID begins a transaction that takes its id at once, having
// declared itself an event writer first if mark; it is rolled back at the
// end of the test unless committed.
func beginWithID(t *testing.T, pool *pgxpool.Pool, mark bool) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if mark {
		if _, err := tx.Exec(ctx, `SELECT events_mark_writer()`); err != nil {
			t.Fatalf("declare an event writer: %v", err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatalf("take a transaction id: %v", err)
	}
	return tx
}

// TestUnmarkedWritersHoldTheHorizon: with the marker's trigger disabled (a
// restore with --disable-triggers, a replication apply), writers are not
// marked, so a transaction that took its id before an append and inserts
// events after it must still hold subscriptions back: they fall back to
// the oldest running transaction. Reading with the marked horizon would
// deliver the later append first and skip this transaction's event.
func TestUnmarkedWritersHoldTheHorizon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, dbURL := pgtest.New(t)
	if _, err := owner.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER events_writer_marker`); err != nil {
		t.Fatal(err)
	}
	pool, _ := pgtest.Service(t, dbURL)
	s := storeOn(t, pool)
	events := subscribe(t, s)

	wantHeldBack(t, s, events, beginWithID(t, pool, false), "early", "an unmarked transaction")
}
