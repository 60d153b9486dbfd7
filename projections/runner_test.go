package projections_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

func TestRunnerAppliesEventsAndReportsProgress(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 37)

	last := e.lastPosition(t)
	var (
		mu       sync.Mutex
		progress []projections.Progress
		once     sync.Once
	)
	caughtUp := make(chan struct{})
	opts := fastOptions(t)
	opts.BatchSize = 5
	opts.OnProgress = func(p projections.Progress) {
		mu.Lock()
		defer mu.Unlock()
		progress = append(progress, p)
		if p.CaughtUp && p.Checkpoint == last {
			once.Do(func() { close(caughtUp) })
		}
	}
	rr := start(t, projections.NewRunner(e.pool, newTestProjection("first"), e.src, opts))
	waitClosed(t, caughtUp, "a caught-up report at "+last.String())
	rr.stop(t) // no more reports after this
	e.wantRows(t)

	applied := 0
	var prev domain.Position
	for i, p := range progress {
		applied += p.Applied
		if p.Name != "test" || p.Applied > opts.BatchSize || p.Checkpoint.Less(prev) {
			t.Errorf("progress %d: got %+v, want name test, at most %d applied, checkpoint at or after %s", i, p, opts.BatchSize, prev)
		}
		prev = p.Checkpoint
	}
	if applied != 37 {
		t.Errorf("progress: got %d events applied in all, want 37", applied)
	}
	if len(progress) == 0 {
		t.Fatal("progress: got no reports, want some")
	}
	final := progress[len(progress)-1]
	if final.Checkpoint != last || !final.CaughtUp || !final.LastEventAt.Equal(testTime(37)) {
		t.Errorf("last progress: got %+v, want checkpoint %s, caught up, last event at %s", final, last, testTime(37))
	}

	// A restart follows on from the checkpoint: nothing is applied twice.
	e.appendEvents(t, a, 8)
	e.caughtUp(t, "second")
	e.wantAppliedBy(t, map[string]int{"first": 37, "second": 8})
}

func TestRunnerKilledMidBatchEndsWhereUninterruptedDoes(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 40)

	// The process dies in the middle of the third batch, half of it
	// written. (Batches hold at most ten events, fewer when another
	// transaction on the server holds events back.)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var crashed domain.Position // the first event of the batch that crashed
	crashing := newTestProjection("crashing")
	crashing.hook = func(ctx context.Context, call int, events []domain.RecordedEvent) error {
		if call == 3 {
			crashed = events[0].Position
			cancel()
			return ctx.Err()
		}
		return nil
	}
	opts := fastOptions(t)
	opts.BatchSize = 10
	if err := projections.NewRunner(e.pool, crashing, e.src, opts).Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: got %v, want context.Canceled", err)
	}
	all := e.collectRows(t, `SELECT event_id, tx_id, position, type, 1 FROM events ORDER BY tx_id, position`)
	before := 0 // events before the batch that crashed
	for before < len(all) && (domain.Position{Commit: uint64(all[before].Commit), Prepare: uint64(all[before].Prepare)}).Less(crashed) {
		before++
	}
	if before < 2 || before == len(all) {
		t.Fatalf("the crashed batch starts at event %d of %d, want after two batches and before the end", before, len(all))
	}
	prev := all[before-1]
	if got, want := e.checkpoint(t, "test"), (domain.Position{Commit: uint64(prev.Commit), Prepare: uint64(prev.Prepare)}); got != want {
		t.Errorf("checkpoint after the crash: got %s, want %s (the end of the second batch)", got, want)
	}
	if got := e.appliedBy(t); !equalCounts(got, map[string]int{"crashing": before}) {
		t.Errorf("rows after the crash: got %v, want %d by crashing (the third batch rolled back)", got, before)
	}

	start(t, projections.NewRunner(e.pool, newTestProjection("restarted"), e.src, opts))
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	e.wantAppliedBy(t, map[string]int{"crashing": before, "restarted": 40 - before})
}

func TestRunnerRetriesBatchThatFailed(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 40)

	var failed atomic.Bool
	p := newTestProjection("flaky")
	p.hook = func(_ context.Context, call int, _ []domain.RecordedEvent) error {
		if call == 3 {
			failed.Store(true)
			return errors.New("disk full, say")
		}
		return nil
	}
	opts := fastOptions(t)
	opts.BatchSize = 10
	start(t, projections.NewRunner(e.pool, p, e.src, opts))
	e.wantCaughtUp(t)
	if !failed.Load() {
		t.Error("the third batch: got no failure, want one (the test did not test anything)")
	}
}

func TestRunnersRaceForOneProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appender
	pa := newTestProjection("A")
	pb := pa.withLabel("B")
	opts := fastOptions(t)
	opts.BatchSize = 3
	runners := map[string]*running{
		"A": start(t, projections.NewRunner(e.pool, pa, e.src, opts)),
		"B": start(t, projections.NewRunner(e.pool, pb, e.src, opts)),
	}
	for range 10 {
		e.appendEvents(t, &a, 5)
		time.Sleep(5 * time.Millisecond)
	}
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	before := e.appliedBy(t)
	if len(before) != 1 {
		t.Fatalf("while both ran: got rows applied by %v, want one runner only", before)
	}
	var leader, standby string
	for leader = range before {
	}
	standby = map[string]string{"A": "B", "B": "A"}[leader]

	runners[leader].stop(t)
	e.appendEvents(t, &a, 20)
	e.wantCaughtUp(t)
	if got, want := e.appliedBy(t), map[string]int{leader: 50, standby: 20}; !equalCounts(got, want) {
		t.Errorf("rows by runner after %s stopped: got %v, want %v", leader, got, want)
	}
	if n := pa.overlaps.Load(); n != 0 {
		t.Errorf("Apply calls running at once: got %d, want 0", n)
	}
}

func TestRunnerTakesLockAgainAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 10)
	g, p := e.gatedRunner(t)

	// Lost while idle: the next batch notices.
	if n := e.terminate(t, projections.AppName("projection", "test")); n != 1 {
		t.Fatalf("terminated the runner's connections: got %d, want 1", n)
	}
	e.appendEvents(t, a, 10)
	e.wantCaughtUp(t)

	// Lost in the middle of a batch: with the lock gone, that batch must
	// not commit; it is applied again once the lock is taken again.
	g.armed.Store(true)
	e.appendInOne(t, a, 4)
	waitClosed(t, g.entered, "the runner to start a batch")
	calls := p.calls.Load()
	if n := e.terminate(t, projections.AppName("projection", "test")); n != 1 {
		t.Fatalf("terminated the runner's connections: got %d, want 1", n)
	}
	e.waitSessions(t, projections.AppName("projection", "test"), 0)
	close(g.release)
	e.wantCaughtUp(t)
	if got := p.calls.Load(); got != calls+1 {
		t.Errorf("Apply calls after the loss: got %d more, want 1 (the interrupted batch again)", got-calls)
	}
}

func TestRunnerFollowsCheckpointMovedByAnotherWriter(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 5)

	g, _ := e.gatedRunner(t)

	// Three events in one append reach the runner as one batch; while it
	// applies them, someone moves the checkpoint past the second.
	g.armed.Store(true)
	e.appendInOne(t, a, 3)
	waitClosed(t, g.entered, "the runner to apply the three events")
	three := e.collectRows(t, `SELECT event_id, tx_id, position, type, 1 FROM events ORDER BY tx_id DESC, position DESC LIMIT 3`)
	moved := domain.Position{Commit: uint64(three[1].Commit), Prepare: uint64(three[1].Prepare)}
	if _, err := e.pool.Exec(context.Background(),
		`UPDATE projection_checkpoints SET commit_position = $1, prepare_position = $2 WHERE name = 'test'`,
		int64(moved.Commit), int64(moved.Prepare)); err != nil {
		t.Fatalf("move the checkpoint: %v", err)
	}
	close(g.release)
	e.waitCheckpoint(t, "test", e.lastPosition(t))

	got := e.collectRows(t, `SELECT event_id, commit_position, prepare_position, type, times FROM test_rows ORDER BY commit_position DESC, prepare_position DESC LIMIT 3`)
	if got[0] != three[0] {
		t.Errorf("newest row: got %+v, want the third event once %+v", got[0], three[0])
	}
	for _, skipped := range three[1:] {
		for _, r := range got {
			if r.EventID == skipped.EventID {
				t.Errorf("rows: got %+v, want no row for an event before the moved checkpoint", r)
			}
		}
	}
}

func TestRunnerFollowsAgainAfterSourceFails(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 30)
	src := &flakySource{Source: e.src, every: 7, maxFailures: 3}
	opts := fastOptions(t)
	opts.BatchSize = 4
	start(t, projections.NewRunner(e.pool, newTestProjection("A"), src, opts))
	e.wantCaughtUp(t)
	if got, want := src.failures.Load(), int32(3); got != want {
		t.Errorf("source failures: got %d, want %d", got, want)
	}
	if got, want := src.subscribes.Load(), int32(4); got != want {
		t.Errorf("subscriptions: got %d, want %d (one, then one after each failure)", got, want)
	}
}

// flakySource drops the subscription each time another `every` events would
// have been delivered, up to maxFailures times.
type flakySource struct {
	projections.Source
	every, maxFailures int

	delivered, failures, subscribes atomic.Int32
}

var errDropped = errors.New("subscription dropped")

func (s *flakySource) Subscribe(ctx context.Context, from domain.Position, size int, h func(context.Context, projections.Batch) error) error {
	s.subscribes.Add(1)
	return s.Source.Subscribe(ctx, from, size, func(ctx context.Context, b projections.Batch) error {
		f := int(s.failures.Load())
		if f < s.maxFailures && int(s.delivered.Load())+len(b.Events) > s.every*(f+1) {
			s.failures.Add(1)
			return errDropped
		}
		s.delivered.Add(int32(len(b.Events)))
		return h(ctx, b)
	})
}

func equalCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("waited %s for %s", waitTimeout, what)
	}
}
