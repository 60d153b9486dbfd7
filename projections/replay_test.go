package projections_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// replayingProjection is the test projection with an in-memory replay
// (projections.Replayer): its Replay keeps the folded events and writes
// them with the projection's own (non-idempotent) write, so an event
// folded twice, or a Write called twice, shows as a row applied twice.
type replayingProjection struct {
	*testProjection
	folds, writes *atomic.Int32
	applied       *atomic.Int32 // events applied by Apply
}

func newReplayingProjection(label string) replayingProjection {
	return replayingProjection{testProjection: newTestProjection(label),
		folds: new(atomic.Int32), writes: new(atomic.Int32), applied: new(atomic.Int32)}
}

func (p replayingProjection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	p.applied.Add(int32(len(events)))
	return p.testProjection.Apply(ctx, tx, events)
}

func (p replayingProjection) NewReplay() projections.Replay { return &testReplay{p: p} }

type testReplay struct {
	p      replayingProjection
	events []domain.RecordedEvent
}

func (r *testReplay) Fold(_ context.Context, _ pgx.Tx, events []domain.RecordedEvent) error {
	r.p.folds.Add(1)
	r.events = append(r.events, events...)
	return nil
}

func (r *testReplay) Write(ctx context.Context, tx pgx.Tx) error {
	r.p.writes.Add(1)
	return r.p.write(ctx, tx, r.events)
}

var _ projections.Replayer = replayingProjection{}

// TestRebuildFoldsInMemory: a Replayer's replay folds every batch in
// memory and writes once; the events the live runner applied meanwhile are
// applied with Apply in the swap, on top of what the Replay wrote; and the
// runner goes on from the swap's checkpoint.
func TestRebuildFoldsInMemory(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 100)
	e.caughtUp(t, "live")

	p := newReplayingProjection("rebuild")
	progress, progressErr := e.appendOnProgress(a)
	res, err := projections.Rebuild(context.Background(), e.pool, p, e.src, projections.RebuildOptions{BatchSize: 32, Progress: progress})
	if err != nil || *progressErr != nil {
		t.Fatalf("Rebuild: got %v (progress: %v), want no error", err, *progressErr)
	}
	if p.folds.Load() < 2 || p.writes.Load() != 1 {
		t.Errorf("Rebuild: %d folds and %d writes, want a fold per batch (several) and one write", p.folds.Load(), p.writes.Load())
	}
	if res.AppliedInSwap == 0 || int(p.applied.Load()) != res.AppliedInSwap {
		t.Errorf("Rebuild: got %+v with %d events applied by Apply, want the events of the swap's catch-up, and only those", res, p.applied.Load())
	}
	e.appendEvents(t, a, 5)
	e.wantCaughtUp(t)
}
