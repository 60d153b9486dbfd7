package benchmarks_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
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
	"github.com/usersd/usersd/projections/projectionstest"
	"github.com/usersd/usersd/projections/userlist"
)

// envScaleEvents turns TestScale on: the number of events to simulate.
const (
	envScaleEvents     = "USERSD_SCALE_EVENTS"
	envScaleWorkspaces = "USERSD_SCALE_WORKSPACES"
	// scaleEventsPerWorkspace sets the default number of workspaces: one
	// per 500 events, so 20,000 at 10 million.
	scaleEventsPerWorkspace = 500
	// scaleOffset shapes the sizes: the i-th workspace gets a share of the
	// events proportional to 1/(i+2), so at 20,000 workspaces the biggest
	// has ~5% of the history and the median ~0.001%.
	scaleOffset = 2
	scaleReads  = 1000 // timed reads per kind of query
	// scaleReadEvents is how much of the history is read for the read rate.
	scaleReadEvents = 2_000_000
)

// TestScale is the simulation behind docs/scaling.md, run by `make scale`
// and skipped unless USERSD_SCALE_EVENTS is set. It seeds a history of that
// many events (the rebuild benchmark's generator: the service's own
// encoded events, COPYed into the events table) over
// USERSD_SCALE_WORKSPACES workspaces (default one per 500 events) of very
// different sizes, then measures, one after another on one database:
// reading the whole history through eventstore.Source (what the event feed
// and every rebuild read), the rebuild of each read model as `usersd
// projections rebuild` runs it (with the process's peak memory), the
// tables' and indexes' sizes, and the latencies of the user list (first
// and deep pages of the biggest workspace, first pages of a median one),
// of the list as of the middle of the history, of a member's history and
// of the audit log's first page. Every figure is logged on a line starting
// with SCALE.
//
// It fails if a rebuild does not apply every event or a query fails; it
// judges no goal (docs/scaling.md compares the figures with the model).
func TestScale(t *testing.T) {
	if os.Getenv(envScaleEvents) == "" {
		t.Skipf("set %s (e.g. 1000000) to run the scale simulation (make scale)", envScaleEvents)
	}
	n := testenv.PositiveInt(t, envScaleEvents, 0)
	workspaces := testenv.PositiveInt(t, envScaleWorkspaces, max(100, n/scaleEventsPerWorkspace))
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	report := func(format string, args ...any) {
		t.Helper()
		t.Logf("SCALE "+format, args...)
	}
	report("machine: %d CPUs, load average before the run %s", runtime.NumCPU(), projectionstest.LoadAverage())
	settings(t, ctx, pool, report)

	start := time.Now()
	stats := seedScale(t, ctx, pool, n, workspaces)
	report("seeded %d events over %d workspaces in %s (%.0f events/s, COPY): %s",
		n, workspaces, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds(), stats)
	sizes(t, ctx, pool, report, []string{"events"})

	store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
	t.Cleanup(store.Close)
	src := eventstore.Source{Store: store, Codec: testCodec}

	// The history through eventstore.Source, as the feed and each rebuild
	// read it: the first scaleReadEvents events (the rate is steady; the
	// rebuilds below read it all).
	want := min(n, scaleReadEvents)
	got := 0
	start = time.Now()
	err := src.Subscribe(ctx, domain.Position{}, floorBatch, func(_ context.Context, batch projections.Batch) error {
		got += len(batch.Events)
		if batch.CaughtUp || got >= want {
			return errStop
		}
		return nil
	})
	read := time.Since(start)
	if !errors.Is(err, errStop) || got < want {
		t.Fatalf("read the history: %d events, want %d (%v)", got, want, err)
	}
	report("read the history through eventstore.Source (decoded, batches of %d): the first %d events in %.1f s = %.0f events/s",
		floorBatch, got, read.Seconds(), float64(got)/read.Seconds())
	// The as-of moment: the position of the middle event (a position is
	// the events' (tx_id, position)).
	var mc, mp int64
	if err := pool.QueryRow(ctx, "SELECT tx_id, position FROM events ORDER BY tx_id, position OFFSET $1 LIMIT 1", n/2).Scan(&mc, &mp); err != nil {
		t.Fatal(err)
	}
	mid := domain.Position{Commit: uint64(mc), Prepare: uint64(mp)}

	for _, p := range []projections.ReadModel{userlist.New(), memberships.New(), audit.New(), historymodel.New()} {
		runtime.GC()
		debug.FreeOSMemory()
		before := rss()
		peak := watchRSS()
		res, err := projections.Rebuild(ctx, pool, p, src, projections.RebuildOptions{Logger: quietLogger()})
		top := peak()
		if err != nil {
			t.Fatalf("rebuild %s: %v", p.Name(), err)
		}
		if res.Applied != n {
			t.Fatalf("rebuild %s applied %d events, want %d", p.Name(), res.Applied, n)
		}
		report("rebuild %s: %d events in %.1f s = %.0f events/s (indexes and analyze %.1f s); process RSS %d MiB before, peak %d MiB",
			p.Name(), n, res.Duration.Seconds(), float64(n)/res.Duration.Seconds(), res.IndexDuration.Seconds(), before>>20, top>>20)
		sizes(t, ctx, pool, report, p.Tables())
	}
	var dbSize int64
	if err := pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&dbSize); err != nil {
		t.Fatal(err)
	}
	report("database size after the rebuilds: %.2f GiB", float64(dbSize)/(1<<30))

	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		t.Fatal(err)
	}
	scaleQueries(t, ctx, pool, store, report, mid)
	report("load average after the run %s", projectionstest.LoadAverage())
}

// seedScale COPYs n events of a shaped history and answers a description
// of its mix and of its workspaces' sizes.
func seedScale(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n, workspaces int) string {
	h := newShapedHistory(7, workspaces, scaleOffset)
	seedFrom(t, ctx, pool, h, n, seedPerTx, testCodec.Encode)
	people := make([]int, len(h.workspaces))
	for i, w := range h.workspaces {
		people[i] = len(w.people)
	}
	slices.Sort(people)
	q := func(p float64) int { return people[min(len(people)-1, int(p*float64(len(people))))] }
	return fmt.Sprintf("%.0f bytes of data+metadata per event; %d accounts; %s; simulated span %s; people (members and invitees) per workspace: median %d, p90 %d, p99 %d, biggest %d",
		float64(h.bytes)/float64(n), len(h.accounts), h.mix(n),
		h.now.Sub(time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)).Round(time.Hour), q(0.5), q(0.9), q(0.99), people[len(people)-1])
}

// scaleQueries times the read models' queries on the biggest workspace and
// a median one.
func scaleQueries(t *testing.T, ctx context.Context, pool *pgxpool.Pool, store eventstore.Store, report func(string, ...any), mid domain.Position) {
	t.Helper()
	var big, median uuid.UUID
	var bigN, medianN int
	if err := pool.QueryRow(ctx, `SELECT workspace_id, count(*) FROM userlist_users GROUP BY 1 ORDER BY 2 DESC LIMIT 1`).Scan(&big, &bigN); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT workspace_id, n FROM (SELECT workspace_id, count(*) n FROM userlist_users GROUP BY 1) s
		ORDER BY n OFFSET (SELECT count(DISTINCT workspace_id) / 2 FROM userlist_users) LIMIT 1`).Scan(&median, &medianN); err != nil {
		t.Fatal(err)
	}
	report("biggest workspace: %d rows in its user list; median workspace: %d", bigN, medianN)

	// A command on a workspace no replica has cached first reads its whole
	// stream (eventstore.Workspaces keeps 1,024 per process, no snapshot).
	for _, w := range []struct {
		name string
		id   uuid.UUID
	}{{"biggest", big}, {"median", median}} {
		var stream int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM events WHERE stream_id = $1", eventstore.WorkspaceStream(w.id)).Scan(&stream); err != nil {
			t.Fatal(err)
		}
		var lat latencies
		for range 5 {
			t0 := time.Now()
			if err := eventstore.NewWorkspaces(store, testCodec, 1).View(ctx, w.id, func(*domain.Workspace) error { return nil }); err != nil {
				t.Fatalf("load the %s workspace: %v", w.name, err)
			}
			lat = append(lat, time.Since(t0))
		}
		report("cold load of the %s workspace's aggregate (%d events in its stream): p50 %.1f ms over %d loads", w.name, stream, ms(lat.Percentile(50)), len(lat))
	}

	cur := userlist.NewQueries(pool, nil)
	past := historymodel.NewQueries(pool)
	at := historymodel.AsOf{Position: mid}
	r := rand.New(rand.NewPCG(5, 6))
	timed := func(what string, f func(i int) error) {
		t.Helper()
		var lat latencies
		for i := range scaleReads {
			t0 := time.Now()
			if err := f(i); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			lat = append(lat, time.Since(t0))
		}
		report("%s: p50 %.0f µs, p99 %.0f µs over %d reads (one reader)", what, us(lat.Percentile(50)), us(lat.Percentile(99)), len(lat))
	}
	curPages := cursors(t, func(c string) (userlist.Page, error) {
		return cur.List(ctx, big, userlist.Filter{Limit: 100, Cursor: c})
	})
	timed("user list, biggest workspace, first page of 50", func(int) error {
		_, err := cur.List(ctx, big, userlist.Filter{})
		return err
	})
	timed("user list, biggest workspace, deep page of 50", func(int) error {
		_, err := cur.List(ctx, big, userlist.Filter{Cursor: curPages[r.IntN(len(curPages))]})
		return err
	})
	timed("user list, median workspace, first page of 50", func(int) error {
		_, err := cur.List(ctx, median, userlist.Filter{})
		return err
	})
	var asOfRows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM membership_intervals i WHERE i.workspace_id = $1 AND (i.valid_from_commit, i.valid_from_prepare) <= ($2, $3)
		AND (i.valid_to_commit IS NULL OR (i.valid_to_commit, i.valid_to_prepare) > ($2, $3))`,
		big, int64(mid.Commit), int64(mid.Prepare)).Scan(&asOfRows); err != nil {
		t.Fatal(err)
	}
	report("as of the middle of the history (%s) the biggest workspace had %d people in its list", mid, asOfRows)
	pastPages := cursors(t, func(c string) (userlist.Page, error) {
		return past.List(ctx, big, at, userlist.Filter{Limit: 100, Cursor: c})
	})
	timed("as-of list, biggest workspace, first page of 50", func(int) error {
		_, err := past.List(ctx, big, at, userlist.Filter{})
		return err
	})
	timed("as-of list, biggest workspace, deep page of 50", func(int) error {
		_, err := past.List(ctx, big, at, userlist.Filter{Cursor: pastPages[r.IntN(len(pastPages))]})
		return err
	})
	members := pgtest.Collect(t, pool, "members of the biggest workspace", pgx.RowTo[uuid.UUID],
		`SELECT user_id FROM userlist_users WHERE workspace_id = $1 ORDER BY random() LIMIT 200`, big)
	if len(members) == 0 {
		t.Fatal("members of the biggest workspace: none")
	}
	var intervals int
	timed("member history, biggest workspace", func(i int) error {
		items, _, err := past.History(ctx, big, members[i%len(members)])
		intervals += len(items)
		return err
	})
	report("member history: %.1f intervals per member on average", float64(intervals)/scaleReads)
	timed("audit log, biggest workspace, first page", func(int) error {
		_, err := audit.List(ctx, pool, testCodec.Keys(), big, audit.Filter{})
		return err
	})
}

// cursors answers the cursors of a list's pages past its first tenth (""
// for a list of one page): where a deep page starts.
func cursors(t *testing.T, list func(cursor string) (userlist.Page, error)) []string {
	t.Helper()
	all := nextCursors(t, list)
	if len(all) == 0 {
		return []string{""}
	}
	return all[len(all)/10:]
}

// settings reports the server's settings that bear on the figures.
func settings(t *testing.T, ctx context.Context, pool *pgxpool.Pool, report func(string, ...any)) {
	t.Helper()
	var version string
	var vals []string
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&version); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size", "synchronous_commit", "wal_compression"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, name+"="+v)
	}
	report("PostgreSQL %s: %s", version, strings.Join(vals, ", "))
}

// sizes reports each table's rows (the planner's estimate after ANALYZE),
// heap, indexes and total (with TOAST).
func sizes(t *testing.T, ctx context.Context, pool *pgxpool.Pool, report func(string, ...any), tables []string) {
	t.Helper()
	for _, name := range tables {
		if _, err := pool.Exec(ctx, "ANALYZE "+name); err != nil {
			t.Fatal(err)
		}
		var rows float64
		var heap, idx, total int64
		if err := pool.QueryRow(ctx, `SELECT c.reltuples, pg_relation_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid)
			FROM pg_class c WHERE c.oid = to_regclass($1)`, "public."+name).Scan(&rows, &heap, &idx, &total); err != nil {
			t.Fatalf("size of %s: %v", name, err)
		}
		report("table %s: %.0f rows, heap %.1f MiB, indexes %.1f MiB, total %.1f MiB (%.0f bytes/row)",
			name, rows, mib(heap), mib(idx), mib(total), float64(total)/max(rows, 1))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rss answers the process's resident set size in bytes (Linux), or 0.
func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// watchRSS samples rss every 100 ms until the function it answers is
// called, which answers the peak.
func watchRSS() func() int64 {
	var mu sync.Mutex
	peak := rss()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				v := rss()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
