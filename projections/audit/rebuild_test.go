package audit_test

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
)

// sliceSource is a history held in memory, for projections.Rebuild.
type sliceSource []domain.RecordedEvent

func (s sliceSource) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(context.Context, projections.Batch) error) error {
	i := sort.Search(len(s), func(i int) bool { return from.Less(s[i].Position) })
	for {
		end := min(i+batchSize, len(s))
		b := projections.Batch{Events: s[i:end], Checkpoint: from, CaughtUp: end == len(s)}
		if end > i {
			b.Checkpoint = s[end-1].Position
		}
		if err := h(ctx, b); err != nil {
			return err
		}
		if b.CaughtUp {
			<-ctx.Done()
			return ctx.Err()
		}
		i = end
	}
}

// TestRebuild runs the runner package's rebuild on the audit projection:
// tables created by audit_create_tables in a fresh schema, the history
// replayed in big batches, the tables swapped in. The chain comes out
// identical to the one built event by event, and the triggers came along.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	var h history
	a, _, events := scenario(&h)
	for i := range events {
		apply(t, pool, events[i:i+1])
	}
	before := chain(t, pool, "public")

	if _, err := projections.Rebuild(ctx, pool, audit.New(), sliceSource(events), projections.RebuildOptions{BatchSize: 3}); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("chain after the rebuild:\n got %+v\nwant %+v", after, before)
	}
	checkTriggers(t, pool, "public")
	checkRefusals(t, pool, "public", a)
	if res := verify(t, pool, a); !res.OK || res.Entries != 6 {
		t.Errorf("Verify after the rebuild: got %+v, want ok with 6 entries", res)
	}
}

// BenchmarkRebuild measures the whole rebuild of b.N events as the runner
// package does it (its default batch size, asynchronous commits, the
// swap). For the 1,000,000-event figure: -bench Rebuild -benchtime 1000000x
func BenchmarkRebuild(b *testing.B) {
	pool, _ := pgtest.New(b)
	events := benchEvents(b.N, 1000)
	b.ResetTimer()
	res, err := projections.Rebuild(context.Background(), pool, audit.New(), sliceSource(events), projections.RebuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Applied != b.N {
		b.Fatalf("applied %d events, want %d", res.Applied, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
