package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// Group commit's tests. They hold a store's grouper as if its writes were
// all in flight, so that the appends made meanwhile queue, and then let
// exactly those run as one group: what happens under load by chance,
// arranged.

// groupStore makes a store and starts each of streams on it with one
// event.
func groupStore(t *testing.T, streams ...string) *Store {
	t.Helper()
	pool, _ := pgtest.NewService(t)
	s := New(pool)
	t.Cleanup(s.Close)
	for _, stream := range streams {
		if _, err := s.Append(context.Background(), stream, eventstore.NoStream{}, groupEvent()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func groupEvent() eventstore.EventData {
	return eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: "Tested.v1", Data: []byte(`{"n": 1}`)}
}

// hold makes g's next writes queue. release waits until n are queued and
// runs them as one group.
func hold[T, R any](t *testing.T, g *grouper[T, R]) (release func(n int)) {
	t.Helper()
	g.mu.Lock()
	held := g.maxInFlight - g.inFlight
	if held <= 0 {
		g.mu.Unlock()
		t.Fatal("hold: writes in flight")
	}
	g.inFlight = g.maxInFlight
	g.mu.Unlock()
	return func(n int) {
		t.Helper()
		waitQueued(t, g, n)
		g.mu.Lock()
		g.inFlight -= held - 1 // the last held slot passes to the group
		g.mu.Unlock()
		g.handOff()
	}
}

func waitQueued[T, R any](t *testing.T, g *grouper[T, R], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		queued := len(g.queue)
		g.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type appendOutcome struct {
	res eventstore.AppendResult
	err error
}

// goAppend appends in the background; the channel answers once.
func goAppend(ctx context.Context, s *Store, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) <-chan appendOutcome {
	out := make(chan appendOutcome, 1)
	go func() {
		res, err := s.Append(ctx, stream, expected, events...)
		out <- appendOutcome{res, err}
	}()
	return out
}

// A group's members keep their own checks and answers: a failed
// expectation and an idempotent retry in the group change nothing for the
// others, which share one transaction.
func TestGroupMembersKeepTheirOwnOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := groupStore(t, "conflict")
	retried := groupEvent()
	first, err := s.Append(ctx, "retried", eventstore.NoStream{}, retried)
	if err != nil {
		t.Fatal(err)
	}

	release := hold(t, s.appends)
	a := goAppend(ctx, s, "a", eventstore.NoStream{}, groupEvent(), groupEvent())
	waitQueued(t, s.appends, 1) // a leads: the others join its group
	conflict := goAppend(ctx, s, "conflict", eventstore.NoStream{}, groupEvent())
	retry := goAppend(ctx, s, "retried", eventstore.NoStream{}, retried)
	b := goAppend(ctx, s, "b", eventstore.NoStream{}, groupEvent())
	release(4)

	ra, rb := <-a, <-b
	if ra.err != nil || rb.err != nil {
		t.Fatalf("the appends beside a conflict and a retry: %v, %v", ra.err, rb.err)
	}
	if ra.res.NextExpectedRevision != 1 || rb.res.NextExpectedRevision != 0 {
		t.Errorf("next expected revisions %d and %d, want 1 and 0", ra.res.NextExpectedRevision, rb.res.NextExpectedRevision)
	}
	if ra.res.Position.Commit != rb.res.Position.Commit {
		t.Errorf("a committed in transaction %d, b in %d: want one group, one transaction", ra.res.Position.Commit, rb.res.Position.Commit)
	}
	if ra.res.Position == rb.res.Position {
		t.Errorf("a and b both answered %v", ra.res.Position)
	}
	if rc := <-conflict; !errors.Is(rc.err, eventstore.ErrWrongExpectedRevision) {
		t.Errorf("no stream expected on an existing stream: %v, want ErrWrongExpectedRevision", rc.err)
	}
	if rr := <-retry; rr.err != nil || rr.res != first {
		t.Errorf("retry: %+v, %v; want the first append's answer %+v", rr.res, rr.err, first)
	}
	for stream, n := range map[string]int{"a": 2, "b": 1, "conflict": 1, "retried": 1} {
		if got, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); err != nil || len(got) != n {
			t.Errorf("%s holds %d events (%v), want %d", stream, len(got), err, n)
		}
	}
}

// A member that fails the group's statement as a whole (an event id stored
// in another stream, JSON the database refuses) gets its own error; the
// others append all the same.
func TestGroupStatementFailureIsOneMembersAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := groupStore(t)
	taken := groupEvent()
	if _, err := s.Append(ctx, "owner", eventstore.NoStream{}, taken); err != nil {
		t.Fatal(err)
	}
	bad := groupEvent()
	bad.Data = []byte(`{"nul": "\u0000"}`) // valid JSON, refused by jsonb

	release := hold(t, s.appends)
	good := goAppend(ctx, s, "good", eventstore.NoStream{}, groupEvent())
	waitQueued(t, s.appends, 1)
	reused := goAppend(ctx, s, "reuser", eventstore.NoStream{}, taken)
	invalid := goAppend(ctx, s, "invalid", eventstore.NoStream{}, bad)
	release(3)

	if r := <-good; r.err != nil {
		t.Errorf("good append beside failing ones: %v", r.err)
	}
	if r := <-reused; !errors.Is(r.err, eventstore.ErrIdempotency) {
		t.Errorf("event id of another stream: %v, want ErrIdempotency", r.err)
	}
	if r := <-invalid; !errors.Is(r.err, eventstore.ErrInvalidAppend) {
		t.Errorf("refused JSON: %v, want ErrInvalidAppend", r.err)
	}
	if got, err := s.ReadStream(ctx, "good", eventstore.ReadOptions{}); err != nil || len(got) != 1 {
		t.Errorf("good holds %d events (%v), want 1", len(got), err)
	}
	for _, stream := range []string{"reuser", "invalid"} {
		if _, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("%s: %v, want ErrStreamNotFound", stream, err)
		}
	}
}

// A caller whose context ends while it waits for a group leaves at once,
// appends nothing, and the group goes on without it.
func TestGroupQueuedCallerCancels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := groupStore(t)

	release := hold(t, s.appends)
	cctx, cancel := context.WithCancel(ctx)
	gone := goAppend(cctx, s, "gone", eventstore.NoStream{}, groupEvent())
	waitQueued(t, s.appends, 1)
	stays := goAppend(ctx, s, "stays", eventstore.NoStream{}, groupEvent())
	waitQueued(t, s.appends, 2)
	cancel()
	select {
	case r := <-gone:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("cancelled while queued: %v, want context.Canceled", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled caller still waits for its group")
	}
	release(1)
	if r := <-stays; r.err != nil {
		t.Errorf("the other queued append: %v", r.err)
	}
	if _, err := s.ReadStream(ctx, "gone", eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("the cancelled append: %v, want ErrStreamNotFound", err)
	}
}

// Concurrent StartStreams calls go as one statement; of two calls starting
// one stream, the first in the group starts it.
func TestGroupStartStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := groupStore(t, "acct-old")
	call := func(streams ...string) []eventstore.StreamStart {
		out := make([]eventstore.StreamStart, len(streams))
		for i, st := range streams {
			out[i] = eventstore.StreamStart{Stream: st, Event: groupEvent()}
		}
		return out
	}
	type outcome struct {
		started []bool
		err     error
	}
	run := func(starts []eventstore.StreamStart) <-chan outcome {
		out := make(chan outcome, 1)
		go func() {
			started, err := s.StartStreams(ctx, starts)
			out <- outcome{started, err}
		}()
		return out
	}
	release := hold(t, s.starts)
	first := call("acct-1", "acct-shared", "acct-old")
	r1 := run(first)
	waitQueued(t, s.starts, 1)
	r2 := run(call("acct-shared", "acct-2"))
	retry := run(first[:1]) // the first call's retry, in the same group
	release(3)
	o1, o2, o3 := <-r1, <-r2, <-retry
	if o1.err != nil || o2.err != nil || o3.err != nil {
		t.Fatalf("errors: %v, %v, %v", o1.err, o2.err, o3.err)
	}
	if got := fmt.Sprint(o1.started, o2.started, o3.started); got != "[true true false] [false true] [false]" {
		t.Errorf("started = %s, want [true true false] [false true] [false]", got)
	}
	var commits []uint64
	for _, st := range []string{"acct-1", "acct-shared", "acct-2"} {
		evs, err := s.ReadStream(ctx, st, eventstore.ReadOptions{})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %d events (%v), want 1", st, len(evs), err)
		}
		commits = append(commits, evs[0].Position.Commit)
	}
	if evs, _ := s.ReadStream(ctx, "acct-shared", eventstore.ReadOptions{}); evs[0].ID != first[1].Event.ID {
		t.Errorf("acct-shared was started by the second call, want the first")
	}
	if commits[0] != commits[2] {
		t.Errorf("the two calls committed in transactions %v, want one", commits)
	}
}

// Appends from many concurrent writers do share transactions (else there
// is no group commit), and each caller's answer is its own event's.
func TestGroupConcurrentAppendsShareTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := groupStore(t)
	const writers = 32
	for round := range 50 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]eventstore.AppendResult, writers)
		errs := make([]error, writers)
		events := make([]eventstore.EventData, writers)
		for w := range writers {
			events[w] = groupEvent()
			wg.Go(func() {
				<-start
				results[w], errs[w] = s.Append(ctx, fmt.Sprintf("w-%d-%d", round, w), eventstore.NoStream{}, events[w])
			})
		}
		close(start)
		wg.Wait()
		perTx := make(map[uint64]int)
		for w := range writers {
			if errs[w] != nil {
				t.Fatal(errs[w])
			}
			got, err := s.ReadStream(ctx, fmt.Sprintf("w-%d-%d", round, w), eventstore.ReadOptions{})
			if err != nil || len(got) != 1 || got[0].ID != events[w].ID || got[0].Position != results[w].Position {
				t.Fatalf("writer %d: answered %v, stored %+v (%v)", w, results[w].Position, got, err)
			}
			perTx[results[w].Position.Commit]++
		}
		if len(perTx) < writers {
			t.Logf("round %d: %d appends in %d transactions", round, writers, len(perTx))
			return
		}
	}
	t.Fatal("50 rounds of 32 concurrent appends, each in its own transaction: no group commit")
}

// twoStores are two processes' stores on one database: their groups run
// side by side and may share streams.
func twoStores(t *testing.T) (stores [2]*Store, pools [2]*pgxpool.Pool, admin *pgxpool.Pool) {
	admin, dbURL := pgtest.New(t)
	for i := range stores {
		pools[i], _ = pgtest.Service(t, dbURL)
		stores[i] = New(pools[i])
		t.Cleanup(stores[i].Close)
	}
	return stores, pools, admin
}

// Many writers of two processes over a few shared streams, appending with
// exact expectations and starting overlapping streams: groups that share
// streams take their row locks in one order, so none waits for another in
// a cycle. A deadlock would not hang (PostgreSQL breaks it after a second
// and the members retry alone) but shows in the database's count.
func TestGroupsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores, pools, admin := twoStores(t)
	const hot, writers, perWriter, starters = 6, 24, 15, 6
	var appended [hot]atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*(writers+starters))
	for p, s := range stores {
		for w := range writers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(p), uint64(w)))
				for done := 0; done < perWriter; {
					k := r.IntN(hot)
					stream := fmt.Sprintf("hot-%d", k)
					var expected eventstore.ExpectedRevision = eventstore.NoStream{}
					last, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{Backwards: true, FromEnd: true, Max: 1})
					switch {
					case err == nil && len(last) == 0:
						errs <- fmt.Errorf("%s: read from the end answered no event and no error", stream)
						return
					case err == nil:
						expected = eventstore.Revision(last[0].Revision)
					case !errors.Is(err, eventstore.ErrStreamNotFound):
						errs <- err
						return
					}
					_, err = s.Append(ctx, stream, expected, groupEvent(), groupEvent())
					switch {
					case err == nil:
						appended[k].Add(2)
						done++
					case !errors.Is(err, eventstore.ErrWrongExpectedRevision):
						errs <- err
						return
					}
				}
			})
		}
		for w := range starters {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(p), uint64(100+w)))
				for range perWriter {
					starts := make([]eventstore.StreamStart, 0, 8)
					for _, k := range r.Perm(20)[:8] {
						starts = append(starts, eventstore.StreamStart{Stream: fmt.Sprintf("acct-%d", k), Event: groupEvent()})
					}
					if _, err := s.StartStreams(ctx, starts); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range hot {
		evs, err := stores[0].ReadStream(ctx, fmt.Sprintf("hot-%d", k), eventstore.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(evs)) != appended[k].Load() {
			t.Errorf("hot-%d holds %d events, %d appended", k, len(evs), appended[k].Load())
		}
		for i, e := range evs {
			if e.Revision != uint64(i) {
				t.Fatalf("hot-%d: revision %d at index %d", k, e.Revision, i)
			}
		}
	}
	// The backends report their deadlocks when they exit.
	var db string
	if err := pools[0].QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		p.Close()
	}
	var deadlocks int64
	for {
		var backends int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&backends); err != nil {
			t.Fatal(err)
		}
		if backends == 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := admin.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = $1`, db).Scan(&deadlocks); err != nil {
		t.Fatal(err)
	}
	if deadlocks != 0 {
		t.Errorf("%d deadlocks, want none", deadlocks)
	}
}

// Subscribers still get every event once, in strictly increasing order,
// when two processes' writers commit in groups.
func TestGroupedAppendsKeepTheGlobalOrder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores, _, _ := twoStores(t)
	const writers, perWriter, streams = 12, 100, 5
	const total = 2 * writers * perWriter
	type result struct {
		seen    map[uuid.UUID]bool
		commits map[uint64]bool
		err     error
	}
	subscribed := make(chan result, 1)
	go func() {
		r := result{seen: make(map[uuid.UUID]bool, total), commits: make(map[uint64]bool)}
		var last domain.Position
		errEnough := errors.New("all seen")
		r.err = stores[0].SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
			for _, e := range b.Events {
				if r.seen[e.ID] || !last.Less(e.Position) {
					return fmt.Errorf("event %s at %v after %v: repeated or out of order", e.ID, e.Position, last)
				}
				r.seen[e.ID], last = true, e.Position
				r.commits[e.Position.Commit] = true
			}
			if len(r.seen) == total {
				return errEnough
			}
			return nil
		})
		if errors.Is(r.err, errEnough) {
			r.err = nil
		}
		subscribed <- r
	}()
	var wg sync.WaitGroup
	ids := make(chan uuid.UUID, total)
	errs := make(chan error, 2*writers)
	for p, s := range stores {
		for w := range writers {
			wg.Go(func() {
				next := make([]uint64, streams)
				for i := range perWriter {
					k := i % streams
					var expected eventstore.ExpectedRevision = eventstore.NoStream{}
					if next[k] > 0 {
						expected = eventstore.Revision(next[k] - 1)
					}
					e := groupEvent()
					if _, err := s.Append(ctx, fmt.Sprintf("o-%d-%d-%d", p, w, k), expected, e); err != nil {
						errs <- err
						return
					}
					next[k]++
					ids <- e.ID
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := <-subscribed
	if r.err != nil {
		t.Fatalf("subscriber after %d of %d events: %v", len(r.seen), total, r.err)
	}
	close(ids)
	for id := range ids {
		if !r.seen[id] {
			t.Fatalf("event %s appended, never delivered", id)
		}
	}
	if len(r.commits) == total {
		t.Fatalf("%d events in %d transactions: no group commit exercised", total, len(r.commits))
	}
	t.Logf("%d events in %d transactions", total, len(r.commits))
}
