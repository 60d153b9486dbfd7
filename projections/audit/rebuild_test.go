package audit_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
)

// TestRebuild runs the runner package's rebuild on the audit projection:
// tables created by the projection's SQL in a fresh schema,
// with their keys and the append-only triggers but without the filter
// indexes, the history replayed in big batches, the indexes built, the
// tables swapped in. The chain comes out identical to the one built event
// by event, the triggers were there all along, and the tables swapped in
// have exactly the live tables' indexes.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	p := audit.New()
	var h history
	a, _, events := scenario(&h)
	for i := range events {
		apply(t, pool, events[i:i+1])
	}
	before := chain(t, pool, "public")
	live := pgtest.Indexes(t, pool, "public", p.Tables())
	var keys []string // the primary keys and the event_id key
	for _, def := range live {
		if strings.Contains(def, "CREATE UNIQUE INDEX ") {
			keys = append(keys, def)
		}
	}
	if len(live) != 7 || len(keys) != 3 {
		t.Fatalf("live indexes: got %q, want three keys and four filter indexes", live)
	}

	schema := projections.RebuildSchema(p.Name())
	var phases []projections.RebuildPhase
	var replaying [][]string
	var atSwap []string
	res, err := projections.Rebuild(ctx, pool, p, projections.SliceSource(events), projections.RebuildOptions{
		BatchSize: 3,
		Progress: func(int, domain.Position) {
			if len(phases) == 1 {
				replaying = append(replaying, pgtest.Indexes(t, pool, schema, p.Tables()))
				checkTriggers(t, pool, schema)
			}
		},
		Phase: func(ph projections.RebuildPhase) {
			phases = append(phases, ph)
			if ph == projections.RebuildSwap {
				atSwap = pgtest.Indexes(t, pool, schema, p.Tables())
				checkTriggers(t, pool, schema)
				checkRefusals(t, pool, schema, a)
			}
		},
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != len(events) || res.IndexDuration <= 0 {
		t.Errorf("Rebuild: got %+v, want %d applied and an index build", res, len(events))
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("chain after the rebuild:\n got %+v\nwant %+v", after, before)
	}
	if want := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildIndexes, projections.RebuildCatchUp, projections.RebuildSwap}; !slices.Equal(phases, want) {
		t.Errorf("phases: got %q, want %q", phases, want)
	}
	if len(replaying) == 0 {
		t.Error("no progress during the replay")
	}
	for i, got := range replaying {
		if !slices.Equal(got, keys) {
			t.Errorf("indexes during the replay, after batch %d: got %q, want the keys only %q", i+1, got, keys)
			break
		}
	}
	if !slices.Equal(atSwap, live) {
		t.Errorf("indexes of the rebuilt tables before the swap: got %q, want the live ones %q", atSwap, live)
	}
	if got := pgtest.Indexes(t, pool, "public", p.Tables()); !slices.Equal(got, live) {
		t.Errorf("indexes after the swap: got %q, want %q", got, live)
	}
	checkTriggers(t, pool, "public")
	checkRefusals(t, pool, "public", a)
	if res := verify(t, pool, a); !res.OK || res.Entries != 6 {
		t.Errorf("Verify after the rebuild: got %+v, want ok with 6 entries", res)
	}
}

// BenchmarkRebuild measures the whole rebuild of b.N events as the runner
// package does it (its default batch size, asynchronous commits, the filter
// indexes built after the replay, the swap). For the 1,000,000-event
// figure: -bench Rebuild -benchtime 1000000x
func BenchmarkRebuild(b *testing.B) {
	pool, _ := pgtest.New(b)
	events := benchEvents(b.N, 1000)
	b.ResetTimer()
	res, err := projections.Rebuild(context.Background(), pool, audit.New(), projections.SliceSource(events), projections.RebuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Applied != b.N {
		b.Fatalf("applied %d events, want %d", res.Applied, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
