package benchmarks_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

const (
	listMembers     = 100_000
	listSeedBatch   = 5000
	listReaders     = 8
	listRun         = 5 * time.Second
	listWarmup      = time.Second
	listWriterRate  = 200
	listDeepCursors = 16
	listGoalP99     = 5 * time.Millisecond
	listGoalMult    = 1.5
	// envPgbench names the pgbench to run; else PATH, else PostgreSQL 15's.
	envPgbench = "PGBENCH"
)

// BenchmarkUserListVsPgbench reads pages of a 100,000-member workspace's
// user list with userlist.Queries.List from 8 goroutines for 5 s, while a
// writer applies role changes through the projection's Apply at 200/s.
// Half the reads are the first page, half a deep page (one of 16 keyset
// cursors spread over the list). Beside it, in the same run and with the
// writer still going, pgbench runs the very SQL List sent (captured from
// List itself, same parameters, prepared, 8 clients, the same mix) for 5 s.
// Each side runs twice, interleaved; the percentiles pool both runs.
func BenchmarkUserListVsPgbench(b *testing.B) {
	pgbench := findPgbench(b)
	ctx := context.Background()
	pool, url := pgtest.New(b)
	ws := uuid.New()

	start := time.Now()
	seed := seedUserList(b, ctx, pool, ws)
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) userlist_users, userlist_logins, userlist_workspaces"); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d members through Apply in %s", listMembers, time.Since(start).Round(time.Millisecond))

	q := userlist.NewQueries(pool, nil)
	deep := deepCursors(b, ctx, q, ws, "")
	scripts := captureScripts(b, ctx, pool, ws, deep)

	wctx, stopWriter := context.WithCancel(ctx)
	writer := startWriter(b, wctx, pool, ws, seed)
	defer stopWriter()

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns, cfg.MinConns = listReaders, listReaders // one per reader, as pgbench has
	readPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer readPool.Close()
	reads := userlist.NewQueries(readPool, nil)

	runReaders(b, ctx, reads, ws, listReaders, 3, "", deep, listWarmup) // connections, prepared statements
	// Two runs of each side, in the order A B B A, so that drift on the
	// shared machine hits both sides alike.
	var goLat, pgbLat latencies
	var pgbOut string
	for _, side := range []string{"go", "pgbench", "pgbench", "go"} {
		if side == "go" {
			goLat = append(goLat, runReaders(b, ctx, reads, ws, listReaders, 3, "", deep, listRun)...)
			continue
		}
		lat, out := runPgbench(b, ctx, pgbench, url, scripts)
		pgbLat, pgbOut = append(pgbLat, lat...), out
	}
	stopWriter()
	written, writeErr := writer.wait()
	if writeErr != nil {
		b.Fatalf("writer: %v", writeErr)
	}

	g50, g99 := goLat.Percentile(50), goLat.Percentile(99)
	p50, p99 := pgbLat.Percentile(50), pgbLat.Percentile(99)
	ratio := g99.Seconds() / p99.Seconds()
	writeRate := float64(written) / writer.elapsed.Seconds()
	b.ReportMetric(us(g50), "p50-us")
	b.ReportMetric(us(g99), "p99-us")
	b.ReportMetric(float64(len(goLat))/(2*listRun).Seconds(), "reads/s")
	b.ReportMetric(us(p50), "pgbench-p50-us")
	b.ReportMetric(us(p99), "pgbench-p99-us")
	b.ReportMetric(float64(len(pgbLat))/(2*listRun).Seconds(), "pgbench-reads/s")
	b.ReportMetric(writeRate, "writes/s")
	b.ReportMetric(float64(writer.batches)/writer.elapsed.Seconds(), "write-tx/s")
	b.ReportMetric(ratio, "ratio")
	if testing.Verbose() {
		b.Logf("pgbench said:\n%s", pgbOut)
	}
	summary(b, "List from %d readers on %d members, first and deep pages, while %.0f role changes/s apply: p50 %.0f µs, p99 %.0f µs, %.0f reads/s; pgbench, same SQL and mix: p50 %.0f µs, p99 %.0f µs, %.0f reads/s; p99 < %d ms: %s; p99/pgbench p99 = %.2f (goal ≤ %.1f: %s)",
		listReaders, listMembers, writeRate, us(g50), us(g99), float64(len(goLat))/(2*listRun).Seconds(),
		us(p50), us(p99), float64(len(pgbLat))/(2*listRun).Seconds(),
		listGoalP99.Milliseconds(), verdict(g99 < listGoalP99), ratio, listGoalMult, verdict(ratio <= listGoalMult))
}

func findPgbench(b *testing.B) string {
	if p := os.Getenv(envPgbench); p != "" {
		return p
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	const pg15 = "/usr/lib/postgresql/15/bin/pgbench"
	if _, err := os.Stat(pg15); err != nil {
		b.Skipf("pgbench not found (set %s)", envPgbench)
	}
	return pg15
}

// listMember is a seeded member the writer may change.
type listMember struct {
	user  uuid.UUID
	email string
	role  domain.Role
}

// seedUserList fills the user list of ws through the projection's Apply,
// in transactions of listSeedBatch events: the owner, then people invited
// and (19 in 20) accepted, a few suspended, most with a login. It answers
// the active members.
func seedUserList(b *testing.B, ctx context.Context, pool *pgxpool.Pool, ws uuid.UUID) []listMember {
	r := rand.New(rand.NewPCG(42, 1))
	s := &wsSeed{tb: b, ctx: ctx, pool: pool, models: []projections.Projection{userlist.New()},
		ws: ws, now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), oneCommit: true}
	s.create()
	var active []listMember
	for i := 1; i < listMembers; i++ {
		m, joined := s.member(r, i)
		if !joined {
			continue // still invited
		}
		if i%50 == 1 {
			s.add(domain.MemberSuspended{WorkspaceID: ws, UserID: m.user, Email: m.email, Role: string(m.role)})
			continue
		}
		if r.IntN(5) > 0 {
			s.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: m.user, LoggedInAt: s.now.Add(-time.Duration(r.IntN(100000)) * time.Minute)})
		}
		active = append(active, m)
	}
	s.flush()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM userlist_users WHERE workspace_id = $1", pgtype.UUID{Bytes: ws, Valid: true}).Scan(&n); err != nil || n != listMembers {
		b.Fatalf("seeded %d members, want %d (%v)", n, listMembers, err)
	}
	listSeq.Store(s.seq)
	return active
}

// wsSeed applies the events of one big workspace's stream, all its
// owner's, through read models' Apply in transactions of listSeedBatch
// events, as the list benchmarks' seeds do.
type wsSeed struct {
	tb     testing.TB
	ctx    context.Context
	pool   *pgxpool.Pool
	models []projections.Projection
	ws     uuid.UUID
	owner  uuid.UUID // made by create
	// now is the time the next event's fields take; recording an event
	// moves it on by tick first (OccurredAt is the new time).
	now  time.Time
	tick time.Duration
	// oneCommit puts every event at commit 1, as the list's writer goes
	// on (listSeq); else event n is at commit n.
	oneCommit bool
	// mark, if not 0, is the number of an event (from 1); marked is its
	// position once recorded.
	mark   uint64
	marked domain.Position
	seq    uint64 // events recorded
	batch  []domain.RecordedEvent
}

// create records the workspace's creation by a new owner.
func (s *wsSeed) create() {
	s.owner = uuid.New()
	s.add(domain.WorkspaceCreated{WorkspaceID: s.ws, Name: "Big workspace", OwnerUserID: s.owner, OwnerEmail: "owner@big.example.com", OwnerName: "Owner", CreatedAt: s.now})
}

// add records e and applies the batch once it is full.
func (s *wsSeed) add(e domain.Event) {
	s.seq++
	s.now = s.now.Add(s.tick)
	commit := s.seq
	if s.oneCommit {
		commit = 1
	}
	rec := domain.RecordedEvent{
		Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{
			EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: s.now, Actor: domain.Actor{UserID: s.owner},
		}},
		StreamID: "workspace-" + s.ws.String(), Revision: s.seq - 1, Position: domain.Position{Commit: commit, Prepare: s.seq},
	}
	s.batch = append(s.batch, rec)
	if s.seq == s.mark {
		s.marked = rec.Position
	}
	if len(s.batch) == listSeedBatch {
		s.flush()
	}
}

// flush applies what is batched, if anything, to each model in a
// transaction of its own.
func (s *wsSeed) flush() {
	if len(s.batch) == 0 {
		return
	}
	for _, p := range s.models {
		if err := pgx.BeginFunc(s.ctx, s.pool, func(tx pgx.Tx) error { return p.Apply(s.ctx, tx, s.batch) }); err != nil {
			s.tb.Fatalf("seed %s: %v", p.Name(), err)
		}
	}
	s.batch = s.batch[:0]
}

// member adds the invitation of the i-th member, with a random name and
// role, and but for one in twenty its acceptance. It answers the member
// and whether they joined.
func (s *wsSeed) member(r *rand.Rand, i int) (listMember, bool) {
	first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	email := fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), i)
	m := listMember{user: uuid.New(), email: email, role: invitedRoles[r.IntN(len(invitedRoles))]}
	inv := uuid.New()
	s.add(domain.UserInvited{WorkspaceID: s.ws, InvitationID: inv, UserID: m.user, Email: email, Role: string(m.role),
		InvitedBy: s.owner, InviterRole: string(domain.RoleAdmin), TokenHash: "x", InvitedAt: s.now, ExpiresAt: s.now.Add(invitationTTL)})
	if i%20 == 0 {
		return m, false
	}
	s.add(domain.InvitationAccepted{WorkspaceID: s.ws, InvitationID: inv, UserID: m.user, Email: email, Name: first + " " + last, Role: string(m.role), AcceptedAt: s.now})
	return m, true
}

// listSeq is the last position the seed and the writer used.
var listSeq atomic.Uint64

// deepCursors pages through the whole list in one order (sort; "" for the
// default), in pages of the largest size, whose cursors serve any page
// size, and answers listDeepCursors cursors spread from a tenth of the way
// to the end.
func deepCursors(b *testing.B, ctx context.Context, q *userlist.Queries, ws uuid.UUID, sort string) []string {
	var all []string
	f := userlist.Filter{Sort: sort, Limit: userlist.MaxLimit}
	for {
		page, err := q.List(ctx, ws, f)
		if err != nil {
			b.Fatal(err)
		}
		if page.NextCursor == "" {
			break
		}
		all = append(all, page.NextCursor)
		f.Cursor = page.NextCursor
	}
	if len(all) < 2*listDeepCursors {
		b.Fatalf("only %d pages sorted by %q", len(all)+1, sort)
	}
	lo := len(all) / 10
	out := make([]string, listDeepCursors)
	for i := range out {
		out[i] = all[lo+i*(len(all)-1-lo)/(listDeepCursors-1)]
	}
	return out
}

// recorder is a userlist.DB that keeps the last query it ran.
type recorder struct {
	userlist.DB
	sql  string
	args []any
}

func (r *recorder) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return r.DB.Query(ctx, sql, args...)
}

// pgbenchScript is one pgbench script file: SQL with its parameters as
// pgbench variables, their values (-D) and its weight.
type pgbenchScript struct {
	name   string
	sql    string
	defs   []string
	weight int
}

var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// captureScripts runs List for the first page and each deep cursor
// through a recorder and turns what List sent into pgbench scripts: the
// first page weighted as much as all deep pages together, so that pgbench
// draws the same mix as the readers.
func captureScripts(b *testing.B, ctx context.Context, db userlist.DB, ws uuid.UUID, deep []string) []pgbenchScript {
	rec := &recorder{DB: db}
	q := userlist.NewQueries(rec, nil)
	capture := func(name, cursor string, weight int) pgbenchScript {
		if _, err := q.List(ctx, ws, userlist.Filter{Cursor: cursor}); err != nil {
			b.Fatal(err)
		}
		if strings.Contains(rec.sql, ":") {
			b.Fatalf("the list SQL contains ':', which pgbench would take for a variable:\n%s", rec.sql)
		}
		s := pgbenchScript{name: name, weight: weight}
		for i, a := range rec.args {
			var v string
			switch a := a.(type) {
			case pgtype.UUID:
				v = uuid.UUID(a.Bytes).String()
			case uuid.UUID:
				v = a.String()
			case string:
				v = a
			case int:
				v = strconv.Itoa(a)
			case int64:
				v = strconv.FormatInt(a, 10)
			default:
				b.Fatalf("List sent an argument of type %T, which this benchmark cannot hand to pgbench", a)
			}
			s.defs = append(s.defs, "-D", fmt.Sprintf("%s_%d=%s", name, i+1, v))
		}
		s.sql = placeholder.ReplaceAllString(rec.sql, ":"+name+"_$1") + ";\n"
		return s
	}
	scripts := []pgbenchScript{capture("first", "", len(deep))}
	for i, c := range deep {
		scripts = append(scripts, capture(fmt.Sprintf("deep%02d", i), c, 1))
	}
	return scripts
}

// runReaders reads pages in one order (sort) with List from readers
// goroutines (random streams seeded by seed) for d, half first pages and
// half deep ones, and answers each read's latency.
func runReaders(b *testing.B, ctx context.Context, q *userlist.Queries, ws uuid.UUID, readers int, seed uint64, sort string, deep []string, d time.Duration) latencies {
	var (
		mu  sync.Mutex
		all latencies
		wg  sync.WaitGroup
	)
	failed := make(chan error, readers)
	end := time.Now().Add(d)
	for i := range readers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), seed))
			var lat latencies
			for time.Now().Before(end) {
				f := userlist.Filter{Sort: sort}
				if r.IntN(2) == 1 {
					f.Cursor = deep[r.IntN(len(deep))]
				}
				start := time.Now()
				page, err := q.List(ctx, ws, f)
				took := time.Since(start)
				if err == nil && len(page.Items) != userlist.DefaultLimit {
					err = fmt.Errorf("sorted by %q: a page of %d rows, want %d", sort, len(page.Items), userlist.DefaultLimit)
				}
				if err != nil {
					failed <- err
					return
				}
				lat = append(lat, took)
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		b.Fatalf("reader: %v", err)
	}
	return all
}

// runPgbench runs the scripts with 8 clients for listRun and answers the
// latency of every transaction but each client's first run of each script
// (which prepares the statement: the readers' warm-up did that for them).
func runPgbench(b *testing.B, ctx context.Context, pgbench, url string, scripts []pgbenchScript) (latencies, string) {
	dir := b.TempDir()
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(listReaders), "-j", "2",
		"-T", strconv.Itoa(int(listRun / time.Second)), "-l", "--log-prefix=" + filepath.Join(dir, "pgb")}
	for _, s := range scripts {
		file := filepath.Join(dir, s.name+".sql")
		if err := os.WriteFile(file, []byte(s.sql), 0o600); err != nil {
			b.Fatal(err)
		}
		args = append(args, "-f", fmt.Sprintf("%s@%d", file, s.weight))
		args = append(args, s.defs...)
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, pgbench, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}

	logs, err := filepath.Glob(filepath.Join(dir, "pgb.*"))
	if err != nil || len(logs) == 0 {
		b.Fatalf("no pgbench logs in %s (%v)", dir, err)
	}
	type first struct{ client, script string }
	seen := make(map[first]bool)
	var lat latencies
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time script_no time_epoch time_us
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 {
				b.Fatalf("%s: unexpected line %q", name, sc.Text())
			}
			if k := (first{fields[0], fields[3]}); !seen[k] {
				seen[k] = true
				continue
			}
			v, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				b.Fatalf("%s: %q: %v", name, sc.Text(), err)
			}
			lat = append(lat, time.Duration(v)*time.Microsecond)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	}
	return lat, string(out)
}

// listWriter applies role changes at listWriterRate through the
// projection's Apply until its context ends: one event per transaction, as
// a caught-up runner does, or, when it falls behind, the backlog in one.
type listWriter struct {
	done    chan struct{}
	written int
	batches int
	err     error
	elapsed time.Duration
}

func startWriter(b *testing.B, ctx context.Context, pool *pgxpool.Pool, ws uuid.UUID, members []listMember) *listWriter {
	w := &listWriter{done: make(chan struct{})}
	p := userlist.New()
	r := rand.New(rand.NewPCG(7, 7))
	go func() {
		defer close(w.done)
		start := time.Now()
		defer func() { w.elapsed = time.Since(start) }()
		t := time.NewTicker(time.Second / listWriterRate)
		defer t.Stop()
		for {
			var now time.Time
			select {
			case <-ctx.Done():
				return
			case now = <-t.C:
			}
			// Everything due since the last batch, as a runner that fell
			// behind applies its backlog in one batch.
			due := int(now.Sub(start) * listWriterRate / time.Second)
			var events []domain.RecordedEvent
			var moved []func()
			for range max(due-w.written, 0) {
				m := &members[r.IntN(len(members))]
				to := otherRole(r, m.role)
				seq := listSeq.Add(1)
				events = append(events, domain.RecordedEvent{
					Envelope: domain.Envelope{
						Event:    domain.RoleChanged{WorkspaceID: ws, UserID: m.user, Email: m.email, FromRole: string(m.role), ToRole: string(to)},
						Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: now},
					},
					StreamID: "workspace-" + ws.String(), Revision: seq - 1, Position: domain.Position{Commit: 1, Prepare: seq},
				})
				moved = append(moved, func() { m.role = to })
			}
			if len(events) == 0 {
				continue
			}
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return p.Apply(ctx, tx, events) })
			if err != nil {
				if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
					w.err = err
				}
				return
			}
			for _, f := range moved {
				f()
			}
			w.written += len(events)
			w.batches++
		}
	}()
	return w
}

func (w *listWriter) wait() (int, error) {
	<-w.done
	return w.written, w.err
}
