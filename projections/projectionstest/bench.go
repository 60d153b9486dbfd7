// Package projectionstest holds what the read models' tests and the
// benchmarks share: applying a synthetic history in batches as
// projections.Rebuild does, the ways a runner may batch it, and (for the
// event store's and the API's benchmarks too) a sized pool, the floor
// table beside the events, latency percentiles and a meter of what one
// database writes to the WAL (walcost.go).
package projectionstest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
)

// BatchSize is the number of events a benchmark applies in one
// transaction: 5000, as projections.Rebuild, or USERSD_BENCH_BATCH.
func BatchSize(b *testing.B) int {
	b.Helper()
	return testenv.PositiveInt(b, "USERSD_BENCH_BATCH", 5000)
}

// ApplyInBatches applies b.N events taken from next, BatchSize(b) at a
// time, each batch in a transaction set up as projections.Rebuild does
// (synchronous_commit off) over the tables of schema; the timer runs only
// while the transactions do. It reports events/s.
func ApplyInBatches(b *testing.B, pool *pgxpool.Pool, schema string,
	apply func(context.Context, pgx.Tx, []domain.RecordedEvent) error,
	next func(n int) []domain.RecordedEvent,
) {
	b.Helper()
	ctx := context.Background()
	batch := BatchSize(b)
	b.ResetTimer()
	for applied := 0; applied < b.N; {
		b.StopTimer()
		events := next(min(batch, b.N-applied))
		b.StartTimer()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off; SET LOCAL search_path TO "+schema+", public"); err != nil {
				return err
			}
			return apply(ctx, tx, events)
		})
		if err != nil {
			b.Fatal(err)
		}
		applied += len(events)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Rebuild times projections.Rebuild of p over events (b.N of them, held in
// memory, so that reading an event store is no part of the figure) with
// the default options, and reports events/s.
func Rebuild(b *testing.B, pool *pgxpool.Pool, p projections.ReadModel, events []domain.RecordedEvent) {
	b.Helper()
	b.ResetTimer()
	res, err := projections.Rebuild(context.Background(), pool, p, projections.SliceSource(events), projections.RebuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if res.Applied != b.N {
		b.Fatalf("applied %d events, want %d", res.Applied, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
