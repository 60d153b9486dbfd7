package projections_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/projections"
)

// comparerProjection is the test projection with a Compare of the test's.
type comparerProjection struct {
	*testProjection
	compare func(ctx context.Context, tx pgx.Tx, rebuilt, live string) error
}

func (p comparerProjection) Compare(ctx context.Context, tx pgx.Tx, rebuilt, live string) error {
	return p.compare(ctx, tx, rebuilt, live)
}

var _ projections.Comparer = comparerProjection{}

// TestRebuildComparesBeforeTheSwap: a Comparer is asked inside the swap,
// with the rebuilt tables at the live checkpoint, while readers can still
// read the live tables (they are locked in SHARE mode, not taken from
// them). A divergence refuses the swap unless AcceptDivergence accepts it.
func TestRebuildComparesBeforeTheSwap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, a := newEnvWith(t, 50)
	e.caughtUp(t, "live")

	count := func(q pgx.Row) (n int) {
		if err := q.Scan(&n); err != nil {
			t.Errorf("count: %v", err)
		}
		return n
	}
	var diverged error
	compared := 0
	p := comparerProjection{testProjection: newTestProjection("rebuild"), compare: func(ctx context.Context, tx pgx.Tx, rebuilt, live string) error {
		compared++
		rows := count(tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{rebuilt, "test_rows"}.Sanitize()))
		if liveRows := count(tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{live, "test_rows"}.Sanitize())); rows != liveRows {
			t.Errorf("Compare: rebuilt %d rows, live %d: want both at the live checkpoint", rows, liveRows)
		}
		// A reader on another connection, which gives up rather than
		// wait for a lock: the live tables must still be readable.
		err := pgx.BeginFunc(ctx, e.pool, func(rtx pgx.Tx) error {
			if _, err := rtx.Exec(ctx, `SET LOCAL lock_timeout = '20s'`); err != nil {
				return err
			}
			var n int
			return rtx.QueryRow(ctx, `SELECT count(*) FROM public.test_rows`).Scan(&n)
		})
		if err != nil {
			t.Errorf("a reader of the live tables during Compare: %v, want it to read", err)
		}
		return diverged
	}}

	if _, err := projections.Rebuild(ctx, e.pool, p, e.src, projections.RebuildOptions{BatchSize: 16}); err != nil || compared != 1 {
		t.Fatalf("Rebuild of agreeing tables: got %v after %d comparisons, want a swap after one", err, compared)
	}
	e.wantRows(t)

	diverged = fmt.Errorf("row 7 differs: %w", projections.ErrDiverged)
	e.appendEvents(t, a, 5)
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	if _, err := projections.Rebuild(ctx, e.pool, comparerProjection{p.withLabel("refused"), p.compare}, e.src, projections.RebuildOptions{}); !errors.Is(err, projections.ErrDiverged) {
		t.Fatalf("Rebuild of diverging tables: got %v, want ErrDiverged", err)
	}
	var refused int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM test_rows WHERE applied_by = 'refused'`).Scan(&refused); err != nil || refused != 0 {
		t.Errorf("rows of the refused rebuild in the live tables: %d (%v), want none", refused, err)
	}
	p.testProjection = p.withLabel("accepted")
	var accepted error
	if _, err := rebuildWhenFree(ctx, e, p, projections.RebuildOptions{
		AcceptDivergence: func(_ context.Context, err error) error { accepted = err; return nil },
	}); err != nil || !errors.Is(accepted, projections.ErrDiverged) {
		t.Fatalf("Rebuild accepting the divergence: got %v (asked with %v), want a swap", err, accepted)
	}
	var swapped int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM test_rows WHERE applied_by = 'accepted'`).Scan(&swapped); err != nil || swapped == 0 {
		t.Errorf("rows of the accepted rebuild in the live tables: %d (%v), want all", swapped, err)
	}
}

// rebuildWhenFree is Rebuild, tried again while the rebuild lock of a
// rebuild that just failed is still held: the server releases it once it
// has seen that rebuild's connection close.
func rebuildWhenFree(ctx context.Context, e *env, p projections.ReadModel, opts projections.RebuildOptions) (projections.RebuildResult, error) {
	deadline := time.Now().Add(waitTimeout)
	for {
		res, err := projections.Rebuild(ctx, e.pool, p, e.src, opts)
		if !errors.Is(err, projections.ErrRebuildRunning) || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
