package projections_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// waitTimeout bounds every wait for a runner. It is generous: on a shared
// server another test's open transaction can hold events back a while.
const waitTimeout = 30 * time.Second

// receive answers what comes on done (a call run in the background), or
// fails t if nothing comes within waitTimeout and a margin (for a call
// bounded by waitTimeout itself to answer its error).
func receive[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	d := waitTimeout + 5*time.Second
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return in %s", what, d)
		var zero T
		return zero
	}
}

// The test projection's tables and its one secondary index (deferred by
// deferredProjection).
const (
	testTablesSQL = `
CREATE TABLE test_rows (
	event_id         uuid   PRIMARY KEY,
	commit_position  bigint NOT NULL,
	prepare_position bigint NOT NULL,
	type             text   NOT NULL,
	applied_by       text   NOT NULL,
	times            int    NOT NULL DEFAULT 1);
CREATE TABLE test_counts (type text PRIMARY KEY, n bigint NOT NULL);`
	testIndexesSQL = `CREATE INDEX test_rows_type ON test_rows (type);`
)

// env is one test's database with an event store and the test projection's
// tables.
type env struct {
	pool  *pgxpool.Pool
	url   string
	store *pgstore.Store
	src   projections.Source
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, url := pgtest.New(t)
	if _, err := pool.Exec(context.Background(), testTablesSQL+testIndexesSQL); err != nil {
		t.Fatalf("create the test projection's tables: %v", err)
	}
	store := pgstore.New(pool, pgstore.WithLogger(testLogger(t)))
	t.Cleanup(store.Close)
	return &env{pool: pool, url: url, store: store, src: eventstore.Source{Store: store, Codec: testCodec}}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testProjection records each event it applies as a row of test_rows
// (counting how many times it was applied, and by whom) and counts events
// per type in test_counts. It is deliberately not idempotent, so a test sees
// an event applied twice.
type testProjection struct {
	name  string
	label string // stored in applied_by
	// hook, if set, runs in each Apply after half the batch is written; an
	// error from it fails the batch. Tests use it to crash or to block.
	hook func(ctx context.Context, call int, events []domain.RecordedEvent) error
	// applying counts the Apply calls of every projection sharing it that
	// are in progress; overlaps counts the times two were at once.
	applying, overlaps *atomic.Int32
	calls              atomic.Int32
}

func (p *testProjection) Name() string     { return p.name }
func (p *testProjection) Tables() []string { return []string{"test_rows", "test_counts"} }
func (p *testProjection) Schema() projections.Schema {
	return projections.Schema{Tables: testTablesSQL + testIndexesSQL}
}

// Handling: the test projection applies every event type.
func (p *testProjection) Handling() projections.Handling {
	var all []domain.Event
	for _, t := range domain.EventTypes() {
		all = append(all, t.Zero())
	}
	return projections.Handling{Applies: projections.EventsOf(all...)}
}
func (p *testProjection) withLabel(l string) *testProjection {
	return &testProjection{name: p.name, label: l, applying: p.applying, overlaps: p.overlaps}
}

func newTestProjection(label string) *testProjection {
	return &testProjection{name: "test", label: label, applying: new(atomic.Int32), overlaps: new(atomic.Int32)}
}

// deferredProjection is the test projection with its secondary index
// deferred: built by indexes after a rebuild's replay.
type deferredProjection struct {
	*testProjection
	indexes string
}

func (p deferredProjection) Schema() projections.Schema {
	return projections.Schema{Tables: testTablesSQL, Indexes: p.indexes}
}

func newDeferredProjection(label string) deferredProjection {
	return deferredProjection{testProjection: newTestProjection(label), indexes: testIndexesSQL}
}

func (p *testProjection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	call := int(p.calls.Add(1))
	if p.applying.Add(1) > 1 {
		p.overlaps.Add(1)
	}
	defer p.applying.Add(-1)
	half := len(events) / 2
	if err := p.write(ctx, tx, events[:half]); err != nil {
		return err
	}
	if p.hook != nil {
		if err := p.hook(ctx, call, events); err != nil {
			return err
		}
	}
	return p.write(ctx, tx, events[half:])
}

func (p *testProjection) write(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if len(events) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(events))
	commits := make([]int64, len(events))
	prepares := make([]int64, len(events))
	types := make([]string, len(events))
	for i, e := range events {
		ids[i], types[i] = e.Metadata.EventID, domain.EventName(e.Event)
		commits[i], prepares[i] = int64(e.Position.Commit), int64(e.Position.Prepare)
	}
	// Unqualified names: the runner's search_path picks the schema.
	_, err := tx.Exec(ctx, `
		INSERT INTO test_rows (event_id, commit_position, prepare_position, type, applied_by)
		SELECT id, c, p, t, $5 FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[]) AS u(id, c, p, t)
		ON CONFLICT (event_id) DO UPDATE SET times = test_rows.times + 1`,
		ids, commits, prepares, types, p.label)
	if err != nil {
		return fmt.Errorf("insert rows: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO test_counts (type, n)
		SELECT t, count(*) FROM unnest($1::text[]) AS u(t) GROUP BY t
		ON CONFLICT (type) DO UPDATE SET n = test_counts.n + excluded.n`, types)
	if err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	return nil
}

// eventTypes are the events tests append, in turn.
var eventTypes = []func(n int) domain.Event{
	func(n int) domain.Event {
		return domain.UserLoggedIn{WorkspaceID: uuid.New(), UserID: uuid.New(), LoggedInAt: testTime(n)}
	},
	func(n int) domain.Event {
		return domain.WorkspaceSettingsChanged{WorkspaceID: uuid.New(), ManagersMayGrantAdmin: n%2 == 0}
	},
	func(n int) domain.Event {
		return domain.MemberSuspended{WorkspaceID: uuid.New(), UserID: uuid.New(), Email: fmt.Sprintf("u%d@example.com", n), Role: "Member"}
	},
}

func testTime(n int) time.Time {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
}

// appender appends test events, numbering them across calls so their types
// and times vary.
type appender struct {
	mu sync.Mutex
	n  int
}

// newEnvWith is newEnv with count events appended (appendEvents), and the
// appender to append more.
func newEnvWith(t *testing.T, count int) (*env, *appender) {
	t.Helper()
	e := newEnv(t)
	a := &appender{}
	e.appendEvents(t, a, count)
	return e, a
}

// appendEvents appends count events, in appends of one to four events to a
// few streams, and returns the position of the last.
func (e *env) appendEvents(t *testing.T, a *appender, count int) domain.Position {
	t.Helper()
	return e.mustAppend(t, a, count, false)
}

// appendInOne appends count events in one append, so one transaction.
func (e *env) appendInOne(t *testing.T, a *appender, count int) domain.Position {
	t.Helper()
	return e.mustAppend(t, a, count, true)
}

func (e *env) mustAppend(t *testing.T, a *appender, count int, inOne bool) domain.Position {
	t.Helper()
	pos, err := e.tryAppend(a, count, inOne)
	if err != nil {
		t.Fatalf("append %d events: %v", count, err)
	}
	return pos
}

func (e *env) tryAppend(a *appender, count int, inOne bool) (domain.Position, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last domain.Position
	for count > 0 {
		k := min(count, 1+a.n%4)
		if inOne {
			k = count
		}
		evs := make([]eventstore.EventData, k)
		for i := range evs {
			a.n++
			ev := eventTypes[a.n%len(eventTypes)](a.n)
			d, err := testCodec.EncodeOne(context.Background(), ev, domain.Metadata{
				EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: testTime(a.n),
				Actor: domain.Actor{System: true},
			})
			if err != nil {
				return last, err
			}
			evs[i] = d
		}
		stream := fmt.Sprintf("test-%d", a.n%5)
		r, err := e.store.Append(context.Background(), stream, eventstore.Any{}, evs...)
		if err != nil {
			return last, err
		}
		last, count = r.Position, count-k
	}
	return last, nil
}

// terminate ends the test database's sessions named appName and returns how
// many it ended.
func (e *env) terminate(t *testing.T, appName string) int {
	t.Helper()
	var n int
	err := e.pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, appName).Scan(&n)
	if err != nil {
		t.Fatalf("terminate %q: %v", appName, err)
	}
	return n
}

// checkpoint reads a projection's checkpoint from the table.
func (e *env) checkpoint(t *testing.T, name string) domain.Position {
	t.Helper()
	var c, p int64
	err := e.pool.QueryRow(context.Background(),
		`SELECT commit_position, prepare_position FROM projection_checkpoints WHERE name = $1`, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Position{}
	}
	if err != nil {
		t.Fatalf("read checkpoint of %s: %v", name, err)
	}
	return domain.Position{Commit: uint64(c), Prepare: uint64(p)}
}

// waitCheckpoint waits until the checkpoint of name reaches pos.
func (e *env) waitCheckpoint(t *testing.T, name string, pos domain.Position) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := e.checkpoint(t, name)
		if !got.Less(pos) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint of %s: got %s after %s, want at least %s", name, got, waitTimeout, pos)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// row is one event as the test projection should hold it.
type row struct {
	EventID uuid.UUID
	Commit  int64
	Prepare int64
	Type    string
	Times   int
}

// wantRows fails unless test_rows holds every stored event exactly once,
// with its position and type, and test_counts counts them by type.
func (e *env) wantRows(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	want := e.collectRows(t, `SELECT event_id, tx_id, position, type, 1 FROM events ORDER BY tx_id, position`)
	got := e.collectRows(t, `SELECT event_id, commit_position, prepare_position, type, times FROM test_rows ORDER BY commit_position, prepare_position`)
	if len(got) != len(want) {
		t.Errorf("test_rows: got %d rows, want %d (one per event)", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("test_rows row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	var mismatches int
	err := e.pool.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT type, count(*) AS n FROM events GROUP BY type) w
		FULL JOIN test_counts g USING (type)
		WHERE w.n IS DISTINCT FROM g.n`).Scan(&mismatches)
	if err != nil {
		t.Fatalf("compare test_counts: %v", err)
	}
	if mismatches != 0 {
		t.Errorf("test_counts: got %d types counted wrong, want 0", mismatches)
	}
}

func (e *env) collectRows(t *testing.T, sql string) []row {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// appliedBy counts test_rows by the runner that applied them.
func (e *env) appliedBy(t *testing.T) map[string]int {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT applied_by, count(*) FROM test_rows GROUP BY applied_by`)
	if err != nil {
		t.Fatalf("count rows by runner: %v", err)
	}
	out := map[string]int{}
	var (
		by string
		n  int
	)
	_, err = pgx.ForEachRow(rows, []any{&by, &n}, func() error { out[by] = n; return nil })
	if err != nil {
		t.Fatalf("count rows by runner: %v", err)
	}
	return out
}

// wantAppliedBy is wantRows, and checks how many rows each runner (or
// rebuild) applied.
func (e *env) wantAppliedBy(t *testing.T, want map[string]int) {
	t.Helper()
	e.wantRows(t)
	if got := e.appliedBy(t); !equalCounts(got, want) {
		t.Errorf("rows by writer: got %v, want %v", got, want)
	}
}

// caughtUp starts a runner of the test projection that marks its rows
// applied by by, and waits until it has applied every event stored so far.
func (e *env) caughtUp(t *testing.T, by string) *running {
	t.Helper()
	rr := start(t, projections.NewRunner(e.pool, newTestProjection(by), e.src, fastOptions(t)))
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	return rr
}

// wantCaughtUp waits until the test projection's checkpoint reaches the
// last stored event, then checks its rows (wantRows).
func (e *env) wantCaughtUp(t *testing.T) {
	t.Helper()
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	e.wantRows(t)
}

// lastPosition is the position of the last stored event.
func (e *env) lastPosition(t *testing.T) domain.Position {
	t.Helper()
	var c, p int64
	err := e.pool.QueryRow(context.Background(), `SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1`).Scan(&c, &p)
	if err != nil {
		t.Fatalf("last position: %v", err)
	}
	return domain.Position{Commit: uint64(c), Prepare: uint64(p)}
}

// running is a Runner started by a test.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs r until stop or the end of the test.
func start(t *testing.T, r *projections.Runner) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { rr.done <- r.Run(ctx) }()
	t.Cleanup(func() { rr.stop(t) })
	return rr
}

// stop cancels the runner and checks that Run returned ctx's error.
func (rr *running) stop(t *testing.T) {
	t.Helper()
	rr.once.Do(func() {
		rr.cancel()
		select {
		case rr.err = <-rr.done:
		case <-time.After(waitTimeout):
			rr.err = errors.New("Run did not return")
		}
		if !errors.Is(rr.err, context.Canceled) {
			t.Errorf("Run after cancel: got %v, want context.Canceled", rr.err)
		}
	})
}

// fastOptions make a runner retry quickly, so tests of recovery are short.
func fastOptions(t *testing.T) projections.RunnerOptions {
	return projections.RunnerOptions{
		Logger: testLogger(t), LockRetry: 20 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
}

// gate holds up the first Apply after it is armed, once half its batch is
// written, until it is released or the runner stops.
type gate struct {
	armed            atomic.Bool
	entered, release chan struct{}
}

// gatedRunner starts a runner of the test projection, labelled "A", whose
// Apply the gate can hold, and waits until it has applied every event
// stored so far.
func (e *env) gatedRunner(t *testing.T) (*gate, *testProjection) {
	t.Helper()
	g := newGate()
	p := newTestProjection("A")
	p.hook = g.hook
	start(t, projections.NewRunner(e.pool, p, e.src, fastOptions(t)))
	e.waitCheckpoint(t, "test", e.lastPosition(t))
	return g, p
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hook(ctx context.Context, _ int, _ []domain.RecordedEvent) error {
	if !g.armed.CompareAndSwap(true, false) {
		return nil
	}
	close(g.entered)
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
