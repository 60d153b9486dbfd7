package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/projectionstest"
)

const liveRowsSQL = `SELECT event_id, commit_position, prepare_position, type, times FROM test_rows ORDER BY commit_position, prepare_position`

func TestRebuildEqualsLive(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 250)
	e.caughtUp(t, "live").stop(t)
	last := e.lastPosition(t)
	live := e.collectRows(t, liveRowsSQL)

	// Damage the live tables, so that only a swap can make them right.
	e.exec(t, `DELETE FROM test_rows WHERE commit_position % 2 = 0 OR prepare_position % 3 = 0`)
	e.exec(t, `UPDATE test_counts SET n = 0`)

	var progress []int
	var lastPos domain.Position
	var phases []projections.RebuildPhase
	res, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{
		BatchSize: 64,
		Phase:     func(ph projections.RebuildPhase) { phases = append(phases, ph) },
		Progress: func(applied int, pos domain.Position) {
			if pos.Less(lastPos) {
				t.Errorf("progress: position %s after %s, want it to move forward", pos, lastPos)
			}
			progress, lastPos = append(progress, applied), pos
		},
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != 250 || res.AppliedInSwap != 0 || res.Position != last || res.Duration <= 0 || res.IndexDuration != 0 {
		t.Errorf("Rebuild: got %+v, want 250 applied, none in the swap, position %s, a duration, no index build", res, last)
	}
	// No secondary indexes (Schema.Indexes): no phase of their own.
	if want := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildSwap}; !slices.Equal(phases, want) {
		t.Errorf("phases: got %q, want %q", phases, want)
	}
	prev := 0
	for _, n := range progress {
		if n <= prev || n-prev > 64 {
			t.Errorf("progress: got %v, want counts rising by 1 to 64 a batch", progress)
			break
		}
		prev = n
	}
	if len(progress) == 0 || progress[len(progress)-1] != 250 || lastPos != last {
		t.Errorf("progress: got %v up to %s, want it to end at 250 up to %s", progress, lastPos, last)
	}
	if got := e.collectRows(t, liveRowsSQL); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Errorf("rows after the rebuild differ from the live ones: got %d rows, want %d", len(got), len(live))
	}
	e.wantRows(t)
	if got := e.checkpoint(t, "test"); got != last {
		t.Errorf("checkpoint: got %s, want %s", got, last)
	}
	e.wantGone(t, "rebuild schema", `SELECT to_regnamespace('rebuild_test') IS NULL`)
	e.wantGone(t, "index on test_rows in public", `SELECT to_regclass('public.test_rows_type') IS NOT NULL`)

	// The runner follows on from the rebuilt checkpoint.
	e.appendEvents(t, a, 10)
	e.caughtUp(t, "live")
	e.wantAppliedBy(t, map[string]int{"rebuild": 250, "live": 10})
}

// While the rebuild replays, the live runner runs ahead of it: each
// progress report appends events and waits for the live runner to apply
// them. The swap must bring the rebuild up to the live checkpoint.
// appendOnProgress is a rebuild's Progress that appends 3 events after
// each batch and waits until the live runner has applied them, so that the
// swap has events to catch up; the error it met, if any, is in *errs.
func (e *env) appendOnProgress(a *appender) (progress func(int, domain.Position), errs *error) {
	errs = new(error)
	return func(int, domain.Position) {
		pos, err := e.tryAppend(a, 3, false)
		if err == nil {
			err = e.waitPosition(pos)
		}
		*errs = errors.Join(*errs, err)
	}, errs
}

func TestRebuildCatchesUpWithLiveRunnerInSwap(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 100)
	e.caughtUp(t, "live")

	progress, progressErr := e.appendOnProgress(a)
	res, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{
		BatchSize: 32, Progress: progress,
	})
	if err != nil || *progressErr != nil {
		t.Fatalf("Rebuild: got %v (progress: %v), want no error", err, *progressErr)
	}
	if res.AppliedInSwap == 0 {
		t.Errorf("Rebuild: got %+v, want events applied in the swap (the live runner was ahead)", res)
	}
	e.appendEvents(t, a, 5)
	e.wantCaughtUp(t)
}

// The live runner is in the middle of a batch when the swap happens. Either
// it has written nothing yet (the swap goes first and the batch must fail
// its fence), or it has written rows in the old tables (the swap waits for
// its commit and then takes its checkpoint into account).
func TestRebuildWhileLiveRunnerIsInBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		batchSize int // 1: the hook runs before the batch writes anything
	}{
		{"before writing", 1},
		{"after writing", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, a := newEnvWith(t, 20)

			g := newGate()
			live := newTestProjection("live")
			live.hook = g.hook
			opts := fastOptions(t)
			opts.BatchSize = tc.batchSize
			start(t, projections.NewRunner(e.pool, live, e.src, opts))
			e.waitCheckpoint(t, "test", e.lastPosition(t))

			// One append: the batch's open transaction holds back events
			// committed after it began writing (the event store reads
			// nothing newer than the oldest running transaction), which
			// would keep the rebuild from ever catching up.
			g.armed.Store(true)
			e.appendInOne(t, a, 10)
			waitClosed(t, g.entered, "the live runner to start a batch")

			done := make(chan outcome, 1)
			go func() {
				res, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src,
					projections.RebuildOptions{BatchSize: 7, LockTimeout: waitTimeout})
				done <- outcome{res, err}
			}()
			var got outcome
			if tc.batchSize == 1 {
				// Nothing holds the swap up: it commits while the batch waits.
				got = receive(t, done, "Rebuild")
				close(g.release)
			} else {
				// The swap cannot lock the tables the batch wrote to.
				e.waitLockWait(t, projections.AppName("rebuild", "test"))
				close(g.release)
				got = receive(t, done, "Rebuild")
			}
			if got.err != nil {
				t.Fatalf("Rebuild: %v", got.err)
			}
			if got.res.Applied != 30 || got.res.Position != e.lastPosition(t) {
				t.Errorf("Rebuild: got %+v, want 30 applied, up to %s", got.res, e.lastPosition(t))
			}
			e.appendEvents(t, a, 5)
			e.wantCaughtUp(t)
		})
	}
}

func TestRebuildWhileEventsAreAppended(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 300)
	start(t, projections.NewRunner(e.pool, newTestProjection("live"), e.src, fastOptions(t)))

	stopAppending := projectionstest.Repeat(func() error {
		_, err := e.tryAppend(a, 2, false)
		time.Sleep(time.Millisecond)
		return err
	})
	res, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{BatchSize: 50})
	appendErr := stopAppending()
	if err != nil || appendErr != nil {
		t.Fatalf("Rebuild: got %v (appending: %v), want no error", err, appendErr)
	}
	if res.Applied < 300 {
		t.Errorf("Rebuild: got %d applied, want at least 300", res.Applied)
	}
	e.wantCaughtUp(t)
}

func TestRebuildReplacesLeftoversAndRunsAlone(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 20)
	// A rebuild that died left its schema behind.
	e.exec(t, `CREATE SCHEMA rebuild_test; CREATE TABLE rebuild_test.test_rows (junk int)`)

	// The second rebuild starts at the first progress report, whatever the
	// batch held: an open transaction elsewhere on the server can hold
	// events back, so the count applied need not pass through 5.
	var second error
	asked := false
	first, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{
		BatchSize: 5,
		Progress: func(int, domain.Position) {
			if !asked {
				asked = true
				_, second = projections.Rebuild(context.Background(), e.pool, newTestProjection("second"), e.src, projections.RebuildOptions{})
			}
		},
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if !errors.Is(second, projections.ErrRebuildRunning) {
		t.Errorf("Rebuild while another runs: got %v, want ErrRebuildRunning", second)
	}
	if first.Applied != 20 {
		t.Errorf("Rebuild: got %d applied, want 20", first.Applied)
	}
	e.wantRows(t)
}

func TestRebuildFailureLeavesLiveTablesAlone(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 20)
	e.caughtUp(t, "live").stop(t)

	failing := newTestProjection("rebuild")
	failing.hook = func(_ context.Context, call int, _ []domain.RecordedEvent) error {
		if call == 2 {
			return errors.New("bad event")
		}
		return nil
	}
	_, err := projections.Rebuild(context.Background(), e.pool, failing, e.src, projections.RebuildOptions{BatchSize: 5})
	if err == nil {
		t.Fatal("Rebuild with a failing Apply: got no error, want one")
	}
	e.wantAppliedBy(t, map[string]int{"live": 20})
	e.wantGone(t, "rebuild schema", `SELECT to_regnamespace('rebuild_test') IS NULL`)
}

// The rebuilt tables come with the live ones' owner and privileges, so a
// live runner of the service's role (which owns nothing and runs no DDL)
// goes on after the swap. That role itself may not rebuild: it is told to
// run the rebuild as the tables' owner.
func TestRebuildKeepsPrivileges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	// As usersd migrate does after the migrations (the test tables are
	// newer than the template's grants).
	if err := postgres.GrantService(ctx, e.url, pgtest.ServiceRole); err != nil {
		t.Fatal(err)
	}
	svc, _ := pgtest.Service(t, e.url)
	svcStore := pgstore.New(svc, pgstore.WithLogger(testLogger(t)))
	t.Cleanup(svcStore.Close)
	svcSrc := eventstore.Source{Store: svcStore, Codec: testCodec}
	var a appender
	e.appendEvents(t, &a, 20)
	start(t, projections.NewRunner(svc, newTestProjection("live"), svcSrc, fastOptions(t)))
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	before := e.privileges(t)
	if !strings.Contains(before, pgtest.ServiceRole+"=arwd/") {
		t.Fatalf("privileges of the live tables: %s; want the service's role to read and write them", before)
	}

	if _, err := projections.Rebuild(ctx, svc, newTestProjection("rebuild"), svcSrc, projections.RebuildOptions{}); err == nil ||
		!strings.Contains(err.Error(), "run it as their owner") {
		t.Errorf("Rebuild as the service's role: got %v, want it refused, naming the owner", err)
	}
	if _, err := projections.Rebuild(ctx, e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{}); err != nil {
		t.Fatalf("Rebuild as the owner: %v", err)
	}
	if got := e.privileges(t); got != before {
		t.Errorf("privileges after the rebuild:\n got %s\nwant %s", got, before)
	}
	e.appendEvents(t, &a, 5)
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	e.wantAppliedBy(t, map[string]int{"rebuild": 20, "live": 5})
}

// privileges describes the owner and privileges of the live test tables.
func (e *env) privileges(t *testing.T) string {
	t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), `
		SELECT string_agg(relname || ' ' || pg_get_userbyid(relowner) || ' ' || coalesce(relacl::text, '-'), '; ' ORDER BY relname)
		FROM pg_class WHERE oid IN ('public.test_rows'::regclass, 'public.test_counts'::regclass)`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRebuildCreatesMissingLiveTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appender
	last := e.appendEvents(t, &a, 12)
	e.exec(t, `DROP TABLE test_rows, test_counts`)
	res, err := projections.Rebuild(context.Background(), e.pool, newTestProjection("rebuild"), e.src, projections.RebuildOptions{})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != 12 || res.Position != last {
		t.Errorf("Rebuild: got %+v, want 12 applied, up to %s", res, last)
	}
	e.wantRows(t)
}

// A read model with secondary indexes (Schema.Indexes) has its tables made
// without them for the replay; the indexes are built, and the
// tables analyzed, before the swap, so the tables swapped in have exactly
// the live tables' indexes. The events appended while the indexes are
// built are applied before the swap, not in it.
func TestRebuildDefersIndexes(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 60)
	e.caughtUp(t, "live").stop(t)
	tables := newTestProjection("").Tables()
	live := pgtest.Indexes(t, e.pool, "public", tables)
	var keys []string // what the tables have without their secondary indexes
	for _, def := range live {
		if strings.Contains(def, "_pkey ON ") {
			keys = append(keys, def)
		}
	}
	if len(live) != 3 || len(keys) != 2 {
		t.Fatalf("live indexes: got %q, want two primary keys and test_rows_type", live)
	}

	var (
		phases    []projections.RebuildPhase
		replaying [][]string // the rebuild's indexes after each batch of the replay
		atSwap    []string   // the rebuild's indexes as the swap starts
		analyzed  int        // tables with statistics as the swap starts
		appendErr error
	)
	res, err := projections.Rebuild(context.Background(), e.pool, newDeferredProjection("rebuild"), e.src, projections.RebuildOptions{
		BatchSize: 16,
		Logger:    testLogger(t),
		Progress: func(int, domain.Position) {
			if len(phases) == 1 {
				replaying = append(replaying, pgtest.Indexes(t, e.pool, "rebuild_test", tables))
			}
		},
		Phase: func(ph projections.RebuildPhase) {
			phases = append(phases, ph)
			switch ph {
			case projections.RebuildIndexes:
				_, appendErr = e.tryAppend(a, 7, false)
			case projections.RebuildSwap:
				atSwap = pgtest.Indexes(t, e.pool, "rebuild_test", tables)
				appendErr = errors.Join(appendErr, e.pool.QueryRow(context.Background(),
					`SELECT count(DISTINCT tablename) FROM pg_stats WHERE schemaname = 'rebuild_test'`).Scan(&analyzed))
			}
		},
	})
	if err != nil || appendErr != nil {
		t.Fatalf("Rebuild: got %v (in the callbacks: %v), want no error", err, appendErr)
	}
	want := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildIndexes, projections.RebuildCatchUp, projections.RebuildSwap}
	if !slices.Equal(phases, want) {
		t.Errorf("phases: got %q, want %q", phases, want)
	}
	if res.Applied != 67 || res.AppliedInSwap != 0 || res.Position != e.lastPosition(t) || res.IndexDuration <= 0 || res.IndexDuration > res.Duration {
		t.Errorf("Rebuild: got %+v, want 67 applied, none in the swap, up to %s, an index build within the duration", res, e.lastPosition(t))
	}
	if len(replaying) == 0 {
		t.Error("no progress during the replay")
	}
	for i, got := range replaying {
		if !slices.Equal(got, keys) {
			t.Errorf("indexes of the rebuild's tables after batch %d of the replay: got %q, want only the keys %q", i+1, got, keys)
			break
		}
	}
	if !slices.Equal(atSwap, live) {
		t.Errorf("indexes of the rebuild's tables before the swap: got %q, want the live ones %q", atSwap, live)
	}
	if analyzed != len(tables) {
		t.Errorf("tables of the rebuild with statistics before the swap: got %d, want %d (ANALYZE)", analyzed, len(tables))
	}
	if got := pgtest.Indexes(t, e.pool, "public", tables); !slices.Equal(got, live) {
		t.Errorf("indexes after the swap: got %q, want %q", got, live)
	}
	e.wantAppliedBy(t, map[string]int{"rebuild": 67})
	e.wantGone(t, "rebuild schema", `SELECT to_regnamespace('rebuild_test') IS NULL`)
}

// An index build that fails fails the rebuild before the swap.
func TestRebuildIndexFailureLeavesLiveTablesAlone(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 20)
	e.caughtUp(t, "live").stop(t)
	cp := e.checkpoint(t, "test")

	p := newDeferredProjection("rebuild")
	p.indexes = "CREATE INDEX test_rows_nothing ON test_rows (no_such_column)"
	_, err := projections.Rebuild(context.Background(), e.pool, p, e.src, projections.RebuildOptions{BatchSize: 5})
	if err == nil || !strings.Contains(err.Error(), "create indexes") {
		t.Fatalf("Rebuild with a failing index: got %v, want an error creating the indexes", err)
	}
	e.wantAppliedBy(t, map[string]int{"live": 20})
	if got := e.checkpoint(t, "test"); got != cp {
		t.Errorf("checkpoint: got %s, want %s", got, cp)
	}
	e.wantGone(t, "rebuild schema", `SELECT to_regnamespace('rebuild_test') IS NULL`)
}

// An index build that fails while another is running lets that one finish
// rather than cancel it: a cancelled statement costs pgx its connection,
// which leaves the build running on an orphaned server process and, on the
// rebuild's own connection, loses the lock and the cleanup of the schema.
func TestRebuildIndexFailureLetsRunningBuildsFinish(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 20)
	e.caughtUp(t, "live").stop(t)
	// Each connection takes one statement: one fails after 0.2 s, while
	// the other spends about a second on its 20 rows.
	e.exec(t, `CREATE FUNCTION public.slow_key(x bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql
		AS $$BEGIN PERFORM pg_sleep(0.05); RETURN x; END$$`)
	e.exec(t, `CREATE FUNCTION public.failing_key(x bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql
		AS $$BEGIN PERFORM pg_sleep(0.2); RAISE EXCEPTION 'planned failure'; END$$`)
	p := newDeferredProjection("rebuild")
	p.indexes = `CREATE INDEX test_rows_slow ON test_rows (public.slow_key(commit_position));
		CREATE INDEX test_rows_failing ON test_rows (public.failing_key(commit_position));`
	start := time.Now()
	_, err := projections.Rebuild(context.Background(), e.pool, p, e.src, projections.RebuildOptions{BatchSize: 5})
	if err == nil || !strings.Contains(err.Error(), "planned failure") {
		t.Fatalf("Rebuild with a failing index: got %v, want the planned failure", err)
	}
	if took := time.Since(start); took < 20*50*time.Millisecond {
		t.Errorf("Rebuild returned after %s, before the slow build (20 rows × 50 ms) could end: it was cancelled", took)
	}
	e.wantGone(t, "index build still running after Rebuild returned", `
		SELECT NOT EXISTS (SELECT FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%test_rows_slow%')`)
	e.wantGone(t, "rebuild schema", `SELECT to_regnamespace('rebuild_test') IS NULL`)
}

func (e *env) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// wantGone fails unless the query answers true.
func (e *env) wantGone(t *testing.T, what, query string) {
	t.Helper()
	var ok bool
	if err := e.pool.QueryRow(context.Background(), query).Scan(&ok); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if !ok {
		t.Errorf("%s: got %q false, want true", what, query)
	}
}

// waitPosition waits until the test projection's checkpoint reaches pos,
// without a *testing.T, for callbacks.
func (e *env) waitPosition(pos domain.Position) error {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		var c, p int64
		err := e.pool.QueryRow(context.Background(),
			`SELECT commit_position, prepare_position FROM projection_checkpoints WHERE name = 'test'`).Scan(&c, &p)
		if err != nil {
			return err
		}
		if !(domain.Position{Commit: uint64(c), Prepare: uint64(p)}).Less(pos) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("checkpoint did not reach %s in %s", pos, waitTimeout)
}

// waitLockWait waits until a session named appName waits for a lock.
func (e *env) waitLockWait(t *testing.T, appName string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var waiting bool
		err := e.pool.QueryRow(context.Background(), `
			SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			               WHERE NOT l.granted AND a.application_name = $1)`, appName).Scan(&waiting)
		if err != nil {
			t.Fatalf("look for lock waits: %v", err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not wait for a lock in %s", appName, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type outcome struct {
	res projections.RebuildResult
	err error
}

// countingSource counts the batches with events its source has handed
// over, that is, read.
type countingSource struct {
	projections.Source
	read atomic.Int32
}

func (s *countingSource) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(ctx context.Context, b projections.Batch) error) error {
	return s.Source.Subscribe(ctx, from, batchSize, func(ctx context.Context, b projections.Batch) error {
		if len(b.Events) > 0 {
			s.read.Add(1)
		}
		return h(ctx, b)
	})
}

// A replay reads the next batch while it applies the last, instead of
// reading and applying in turn: the first Apply waits until the second
// batch has been read, which never happens if the two take turns.
func TestRebuildReadsWhileApplying(t *testing.T) {
	t.Parallel()
	e, _ := newEnvWith(t, 20)
	src := &countingSource{Source: e.src}
	p := newTestProjection("rebuild")
	p.hook = func(ctx context.Context, call int, _ []domain.RecordedEvent) error {
		if call != 1 {
			return nil
		}
		deadline := time.Now().Add(waitTimeout)
		for src.read.Load() < 2 {
			if time.Now().After(deadline) {
				return fmt.Errorf("batches read while the first was applied: got %d, want 2", src.read.Load())
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	res, err := projections.Rebuild(context.Background(), e.pool, p, src, projections.RebuildOptions{BatchSize: 5})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != 20 {
		t.Errorf("applied %d events, want 20", res.Applied)
	}
	e.wantRows(t)
}
