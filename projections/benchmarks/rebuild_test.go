package benchmarks_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	historymodel "github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

const (
	// envEvents shrinks the rebuild's history for a quick run.
	envEvents       = "USERSD_BENCH_EVENTS"
	defaultEvents   = 1_000_000
	benchWorkspaces = 1_000
	seedPerTx       = 100_000
	// floorBatch is what the floor reads at a time: the same as a rebuild
	// applies at a time by default (checked on every run).
	floorBatch = 5000

	rebuildGoalRate  = 100_000 // events/s
	rebuildGoalRatio = 0.8     // floor time / rebuild time
)

var errStop = errors.New("stop")

// BenchmarkRebuild seeds a history of USERSD_BENCH_EVENTS events (default
// 1,000,000) and rebuilds each projection from it with projections.Rebuild,
// as `usersd projections rebuild` does. Beside each rebuild, in the same
// run, it measures the floor no rebuild can beat: reading every event
// through eventstore.Source (decoding included) plus COPYing the rebuilt
// tables' rows into empty tables of the same columns (no indexes, no
// triggers). ratio is floor/rebuild: 1 would mean the rebuild costs no more
// than reading the history and writing its result once.
//
// The timer runs only around the rebuild, so ns/op is the rebuild's time.
func BenchmarkRebuild(b *testing.B) {
	n := testenv.PositiveInt(b, envEvents, defaultEvents)
	ctx := context.Background()
	pool, _ := pgtest.New(b)

	start := time.Now()
	h := seedHistory(b, ctx, pool, n, benchWorkspaces, seedPerTx)
	seeded := fmt.Sprintf("seeded %d events over %d workspaces in %s: %.0f bytes of data+metadata per event on average; %s",
		n, benchWorkspaces, time.Since(start).Round(time.Millisecond), float64(h.bytes)/float64(n), h.mix(n))

	store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
	b.Cleanup(store.Close)
	src := eventstore.Source{Store: store, Codec: testCodec}
	// For the record, not for a goal: what reading costs before decoding.
	raw := readRaw(b, ctx, store, n)
	decoded := readHistory(b, ctx, src, n)
	reading := fmt.Sprintf("reading the history: %.0f events/s as stored, %.0f events/s decoded (eventstore.Source)",
		float64(n)/raw.Seconds(), float64(n)/decoded.Seconds())
	wm := min(n, testenv.PositiveInt(b, envWatermillEvents, defaultWatermillEvents))
	seedWatermill(b, ctx, pool, wm)
	for i, p := range []projections.ReadModel{userlist.New(), memberships.New(), historymodel.New(), audit.New()} {
		b.Run(p.Name(), func(b *testing.B) {
			if i == 0 { // a parent benchmark's own log is not shown
				b.Log(seeded)
				b.Log(reading)
			}
			benchRebuild(b, ctx, pool, src, p, n, wm)
		})
	}
}

func benchRebuild(b *testing.B, ctx context.Context, pool *pgxpool.Pool, src projections.Source, p projections.ReadModel, n, wm int) {
	var read, rebuild, indexing, copied, watermill time.Duration
	var rows int64
	var heap uint64
	b.StopTimer()
	for range b.N {
		// The floor's two halves sit right before and after the rebuild,
		// so drift on the machine hits both sides alike.
		read += readHistory(b, ctx, src, n)

		var batch int
		stopHeap := sampleHeap()
		b.StartTimer()
		res, err := projections.Rebuild(ctx, pool, p, src, projections.RebuildOptions{
			Logger: quietLogger(),
			Progress: func(applied int, _ domain.Position) {
				if batch == 0 {
					batch = applied
				}
			},
		})
		b.StopTimer()
		heap = max(heap, stopHeap())
		if err != nil {
			b.Fatalf("rebuild %s: %v", p.Name(), err)
		}
		if res.Applied != n {
			b.Fatalf("rebuild %s applied %d events, want %d", p.Name(), res.Applied, n)
		}
		if batch != min(floorBatch, n) {
			b.Logf("note: the rebuild applied %d events per batch, the floor reads %d", batch, floorBatch)
		}
		rebuild += res.Duration
		indexing += res.IndexDuration

		d, r := copyRows(b, ctx, pool, p.Tables())
		copied += d
		rows = r

		watermill += watermillReplay(b, ctx, pool, p, wm)
	}
	total := float64(n) * float64(b.N)
	rate := total / rebuild.Seconds()
	floor := read + copied
	ratio := floor.Seconds() / rebuild.Seconds()
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(per(rebuild), "rebuild-s")
	b.ReportMetric(per(indexing), "index-s")
	b.ReportMetric(per(read), "floor-read-s")
	b.ReportMetric(per(copied), "floor-copy-s")
	b.ReportMetric(per(floor), "floor-s")
	b.ReportMetric(total/read.Seconds(), "read-events/s")
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
	wmRate := float64(wm) * float64(b.N) / watermill.Seconds()
	b.ReportMetric(wmRate, "watermill-events/s")
	b.ReportMetric(float64(wm), "watermill-events")
	b.ReportMetric(rate/wmRate, "ratio-watermill")
	summary(b, "%s: rebuilt %d events in %.2f s = %.0f events/s (goal ≥ %d: %s), of which %.2f s building the secondary indexes, the Go heap growing by at most %.0f MB; floor = read %.2f s + copy %d rows %.2f s = %.2f s; ratio floor/rebuild = %.2f (goal ≥ %.1f: %s); watermill-sql subscriber (batch %d) + Apply per message: %.0f events/s over the first %d events, rebuild/watermill = %.1f (goal ≥ %.0f: %s)",
		p.Name(), n, per(rebuild), rate, rebuildGoalRate, verdict(rate >= rebuildGoalRate), per(indexing), float64(heap)/(1<<20),
		per(read), rows, per(copied), per(floor), ratio, rebuildGoalRatio, verdict(ratio >= rebuildGoalRatio),
		watermillBatch, wmRate, wm, rate/wmRate, rebuildGoalWatermill, verdict(rate/wmRate >= rebuildGoalWatermill))
}

// readHistory reads the whole history through src, as a rebuild does, and
// answers how long it took.
func readHistory(b *testing.B, ctx context.Context, src projections.Source, want int) time.Duration {
	got := 0
	start := time.Now()
	err := src.Subscribe(ctx, domain.Position{}, floorBatch, func(_ context.Context, batch projections.Batch) error {
		got += len(batch.Events)
		if batch.CaughtUp {
			return errStop
		}
		return nil
	})
	d := time.Since(start)
	if !errors.Is(err, errStop) {
		b.Fatalf("read the history: %v", err)
	}
	if got != want {
		b.Fatalf("read %d events, want %d", got, want)
	}
	return d
}

// readRaw reads the whole history from the store without decoding it.
func readRaw(b *testing.B, ctx context.Context, store eventstore.Store, want int) time.Duration {
	got := 0
	start := time.Now()
	err := store.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: floorBatch}, func(_ context.Context, batch eventstore.Batch) error {
		got += len(batch.Events)
		if batch.CaughtUp {
			return errStop
		}
		return nil
	})
	d := time.Since(start)
	if !errors.Is(err, errStop) || got != want {
		b.Fatalf("read the history: %d events, want %d (%v)", got, want, err)
	}
	return d
}

// copyRows reads back every row of the live tables and COPYs them into
// fresh tables of the same columns and defaults, in one transaction as a
// rebuild's batches run (synchronous_commit off). Only the COPY is timed.
// json and jsonb values travel as their text, so that Go does not decode
// and re-encode them.
func copyRows(b *testing.B, ctx context.Context, pool *pgxpool.Pool, tables []string) (time.Duration, int64) {
	type table struct {
		name, floor string
		cols        []string
		rows        [][]any
	}
	var ts []table
	for _, t := range tables {
		cols, sel := columns(b, ctx, pool, t)
		rows, err := pool.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+pgx.Identifier{"public", t}.Sanitize())
		if err != nil {
			b.Fatalf("read %s: %v", t, err)
		}
		data, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			b.Fatalf("read %s: %v", t, err)
		}
		floor := "floor_" + t
		if _, err := pool.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TABLE %[1]s (LIKE %[2]s INCLUDING DEFAULTS)",
			pgx.Identifier{floor}.Sanitize(), pgx.Identifier{"public", t}.Sanitize())); err != nil {
			b.Fatalf("create %s: %v", floor, err)
		}
		ts = append(ts, table{name: t, floor: floor, cols: cols, rows: data})
	}

	var total int64
	start := time.Now()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		for _, t := range ts {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{t.floor}, t.cols, pgx.CopyFromRows(t.rows))
			if err != nil {
				return fmt.Errorf("copy into %s: %w", t.floor, err)
			}
			total += n
		}
		return nil
	})
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range ts {
		if _, err := pool.Exec(ctx, "DROP TABLE "+pgx.Identifier{t.floor}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	return d, total
}

// columns answers a live table's column names and the select list that
// reads them (json as text).
func columns(b *testing.B, ctx context.Context, pool *pgxpool.Pool, table string) (names, sel []string) {
	rows, err := pool.Query(ctx, `SELECT a.attname, t.typname IN ('json', 'jsonb')
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, pgx.Identifier{"public", table}.Sanitize())
	if err != nil {
		b.Fatalf("columns of %s: %v", table, err)
	}
	var name string
	var isJSON bool
	_, err = pgx.ForEachRow(rows, []any{&name, &isJSON}, func() error {
		names = append(names, name)
		s := pgx.Identifier{name}.Sanitize()
		if isJSON {
			s += "::text"
		}
		sel = append(sel, s)
		return nil
	})
	if err != nil || len(names) == 0 {
		b.Fatalf("columns of %s: %v (%d found)", table, err, len(names))
	}
	return names, sel
}

// sampleHeap samples the live Go heap (runtime/metrics: the heap the last
// GC found live, so garbage not yet collected does not count) every 10 ms
// until the function it answers is called, which answers the largest
// growth over the live heap at the start: what a rebuild holds in memory,
// the read model's in-memory fold and the pages in flight. A GC first
// makes the start a fair baseline (the floor's rows freed).
func sampleHeap() func() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	done, out := make(chan struct{}), make(chan uint64)
	go func() {
		peak := base
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				peak = max(peak, read())
			case <-done:
				out <- max(peak, read()) - base
				return
			}
		}
	}()
	return func() uint64 { close(done); return <-out }
}
