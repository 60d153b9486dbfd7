package memberships_test

import (
	"context"
	"slices"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/memberships"
)

// TestRebuild runs projections.Rebuild on the memberships over a history
// the live tables were built from batch by batch: the tables swapped in
// hold the same rows and have the live tables' indexes. The projection has
// no secondary index, so nothing is deferred.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	p := memberships.New()
	if p.Schema().Indexes != "" {
		t.Error("memberships has secondary indexes: the test expects none to defer")
	}
	events := newGenerator(4000).next(4000)
	for i := 0; i < len(events); i += 150 {
		apply(t, pool, "public", events[i:min(i+150, len(events))])
	}
	want := dump(t, pool, "public")
	live := pgtest.Indexes(t, pool, "public", p.Tables())

	var phases []projections.RebuildPhase
	res, err := projections.Rebuild(ctx, pool, p, projections.SliceSource(events), projections.RebuildOptions{
		BatchSize: 500,
		Phase:     func(ph projections.RebuildPhase) { phases = append(phases, ph) },
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != len(events) || res.IndexDuration != 0 {
		t.Errorf("Rebuild: got %+v, want %d applied, no index build", res, len(events))
	}
	if got := dump(t, pool, "public"); got != want {
		t.Errorf("tables after the rebuild differ from the live ones:\n%s\nwant\n%s", got, want)
	}
	if want := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildSwap}; !slices.Equal(phases, want) {
		t.Errorf("phases: got %q, want %q", phases, want)
	}
	if got := pgtest.Indexes(t, pool, "public", p.Tables()); len(got) != 2 || !slices.Equal(got, live) {
		t.Errorf("indexes after the swap: got %q, want the two primary keys %q", got, live)
	}
}
