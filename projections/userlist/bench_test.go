package userlist_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/projectionstest"
	"github.com/usersd/usersd/projections/userlist"
)

var (
	firstNames = strings.Fields("Ada Alan Anna Ben Carla Chen Dana Eli Emma Femi Grace Hugo Ines Ivan Jana Jon Kai Lea Liam Lina Maria Max Mia Nia Noah Olga Omar Pia Raj Rosa Sam Sara Tom Una Vera Wei Yara Yuki Zoe Zola")
	lastNames  = strings.Fields("Abe Baker Cohen Diaz Evans Fischer Garcia Hansen Ito Jones Kim Lopez Meyer Nagy Olsen Patel Quinn Rossi Silva Tanaka Ueda Varga Weber Xu Young Zhang")
)

// seedRows writes n people into ws directly with COPY (what Apply would
// write, without going through events): 5% invited (no name), 5%
// suspended, roles mostly AgentUser.
func seedRows(tb testing.TB, pool *pgxpool.Pool, ws uuid.UUID, n int, seed uint64) {
	tb.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 1))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([][]any, 0, n)
	var logins [][]any
	inviter := pgtype.UUID{Bytes: uuid.New(), Valid: true}
	for i := range n {
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		email := fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), i)
		name := pgtype.Text{String: first + " " + last, Valid: true}
		role := string(domain.RoleAgentUser)
		switch x := r.IntN(1000); {
		case x < 2:
			role = string(domain.RoleAdmin)
		case x < 22:
			role = string(domain.RoleManager)
		case x < 122:
			role = string(domain.RoleEditor)
		case x < 202:
			role = string(domain.RoleMonitor)
		}
		var (
			status               = string(domain.StatusActive)
			invitedAt, expiresAt pgtype.Timestamptz
			invID, invitedBy     pgtype.UUID
			attempt              int32
			emailStatus          pgtype.Text
		)
		switch i % 20 {
		case 0:
			status, name = string(domain.StatusInvited), pgtype.Text{}
			invID, invitedBy, attempt = pgtype.UUID{Bytes: uuid.New(), Valid: true}, inviter, 1
			at := now.Add(-time.Duration(r.IntN(240)) * time.Hour)
			invitedAt, expiresAt = pgtype.Timestamptz{Time: at, Valid: true}, pgtype.Timestamptz{Time: at.Add(week), Valid: true}
			emailStatus = pgtype.Text{String: userlist.EmailSent, Valid: true}
		case 1:
			status = string(domain.StatusSuspended)
		}
		user := uuid.New()
		// Every row has its login row (tables.sql); NULL: never logged in,
		// every invited person and one member in ten.
		var lastLogin pgtype.Timestamptz
		if status != string(domain.StatusInvited) && r.IntN(10) != 0 {
			lastLogin = pgtype.Timestamptz{Time: now.Add(-time.Duration(r.IntN(200_000)) * time.Minute), Valid: true}
		}
		logins = append(logins, []any{ws, user, lastLogin})
		rows = append(rows, []any{ws, user, email, name, role, status, invID, invitedAt, invitedBy, expiresAt, false, attempt, emailStatus})
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"userlist_users"},
		[]string{"workspace_id", "user_id", "email", "name", "role", "status", "invitation_id",
			"invited_at", "invited_by", "expires_at", "expired", "attempt", "email_status"},
		pgx.CopyFromRows(rows))
	if err != nil {
		tb.Fatalf("seed: %v", err)
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"userlist_logins"}, []string{"workspace_id", "user_id", "last_login_at"}, pgx.CopyFromRows(logins))
	if err != nil {
		tb.Fatalf("seed logins: %v", err)
	}
}

// seedBig makes a workspace of 100,000 people next to a smaller one, and
// analyzes the table as autovacuum would.
func seedBig(tb testing.TB, pool *pgxpool.Pool) uuid.UUID {
	tb.Helper()
	ws := uuid.New()
	seedRows(tb, pool, ws, 100_000, 1)
	seedRows(tb, pool, uuid.New(), 20_000, 2)
	if _, err := pool.Exec(context.Background(), "VACUUM ANALYZE userlist_users, userlist_logins"); err != nil {
		tb.Fatal(err)
	}
	return ws
}

// cursorAt pages through the list with f until row `at` and answers the
// cursor that continues from there.
func cursorAt(tb testing.TB, q *userlist.Queries, ws uuid.UUID, f userlist.Filter, at int) string {
	tb.Helper()
	f.Limit = userlist.MaxLimit
	for seen := 0; seen < at; seen += f.Limit {
		page, err := q.List(context.Background(), ws, f)
		if err != nil {
			tb.Fatal(err)
		}
		if page.NextCursor == "" {
			tb.Fatalf("the list ends before row %d", at)
		}
		f.Cursor = page.NextCursor
	}
	return f.Cursor
}

// TestListPlansUseIndexes checks on 100,000 members that each page query
// reads an index in the list's order: no sequential scan, no sort of the
// workspace's rows. (Timings are in BenchmarkListPage.)
func TestListPlansUseIndexes(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ws := seedBig(t, pool)
	ctx := context.Background()
	q := userlist.NewQueries(pool, nil)

	deep := cursorAt(t, q, ws, userlist.Filter{}, 50_000)
	deepActive := cursorAt(t, q, ws, userlist.Filter{Status: "active"}, 40_000)
	deepEditor := cursorAt(t, q, ws, userlist.Filter{Role: "Editor"}, 5_000)
	byLogin := userlist.Filter{Sort: userlist.SortLastLogin}
	byLoginDesc := userlist.Filter{Sort: userlist.SortLastLoginDesc}
	dormant := userlist.Filter{Sort: userlist.SortLastLogin, InactiveSince: "2029-12-01T00:00:00Z"}
	deepLogin := cursorAt(t, q, ws, byLogin, 50_000)
	deepLoginDesc := cursorAt(t, q, ws, byLoginDesc, 50_000)
	cases := []struct {
		f     userlist.Filter
		index string // "" when any index will do
		sort  bool   // a sort of the matching rows is fine (few rows)
	}{
		{userlist.Filter{}, "userlist_users_sort_idx", false},
		{userlist.Filter{Cursor: deep}, "userlist_users_sort_idx", false},
		{userlist.Filter{Status: "active"}, "userlist_users_status_sort_idx", false},
		{userlist.Filter{Status: "active", Cursor: deepActive}, "userlist_users_status_sort_idx", false},
		{userlist.Filter{Status: "invited"}, "userlist_users_status_sort_idx", false},
		{userlist.Filter{Role: "Editor", Cursor: deepEditor}, "userlist_users_role_sort_idx", false},
		{userlist.Filter{Role: "Admin"}, "", true},
		{userlist.Filter{Q: "a"}, "", true},
		{userlist.Filter{Q: "ada.abe"}, "", true},
		{userlist.Filter{Q: "zzzqqq"}, "", true},
		// Sorted by last login (issue 17): the logins' index in order, both
		// ways, the users' rows by key.
		{byLogin, "userlist_logins_sort_idx", false},
		{userlist.Filter{Sort: byLogin.Sort, Cursor: deepLogin}, "userlist_logins_sort_idx", false},
		{byLoginDesc, "userlist_logins_sort_idx", false},
		{userlist.Filter{Sort: byLoginDesc.Sort, Cursor: deepLoginDesc}, "userlist_logins_sort_idx", false},
		{dormant, "userlist_logins_sort_idx", false},
		{userlist.Filter{Sort: byLogin.Sort, Status: "active"}, "userlist_logins_sort_idx", false},
		{userlist.Filter{Sort: byLoginDesc.Sort, Role: "Editor"}, "userlist_logins_sort_idx", false},
	}
	for _, tc := range cases {
		sql, args, err := userlist.ListSQL(ws, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
			t.Fatalf("explain %s: %v", sql, err)
		}
		var plan []struct{ Plan planNode }
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		nodes := plan[0].Plan.walk(nil)
		name := fmt.Sprintf("status=%q role=%q q=%q sort=%q inactiveSince=%q cursor=%v", tc.f.Status, tc.f.Role, tc.f.Q, tc.f.Sort, tc.f.InactiveSince, tc.f.Cursor != "")
		for _, n := range nodes {
			if n.NodeType == "Seq Scan" {
				t.Errorf("%s: plan has a sequential scan:\n%s", name, raw)
			}
			if n.NodeType == "Sort" && !tc.sort {
				t.Errorf("%s: plan sorts instead of reading an index in order:\n%s", name, raw)
			}
		}
		if tc.index != "" && !usesIndex(nodes, tc.index) {
			t.Errorf("%s: plan does not use %s:\n%s", name, tc.index, raw)
		}
	}
}

type planNode struct {
	NodeType  string     `json:"Node Type"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}

func (n planNode) walk(out []planNode) []planNode {
	out = append(out, n)
	for _, c := range n.Plans {
		out = c.walk(out)
	}
	return out
}

func usesIndex(nodes []planNode, index string) bool {
	for _, n := range nodes {
		if strings.HasPrefix(n.NodeType, "Index") && n.IndexName == index {
			return true
		}
	}
	return false
}

// BenchmarkListPage reads pages of 50 of a workspace of 100,000 members:
// the first page and one half-way through (keyset), with and without a
// status filter, and with a text query. It reports the median and 99th
// percentile latency per page in microseconds.
func BenchmarkListPage(b *testing.B) {
	pool, _ := pgtest.New(b)
	ws := seedBig(b, pool)
	q := userlist.NewQueries(pool, nil)
	ctx := context.Background()

	cases := []struct {
		name string
		f    userlist.Filter
	}{
		{"first", userlist.Filter{}},
		{"deep", userlist.Filter{Cursor: cursorAt(b, q, ws, userlist.Filter{}, 50_000)}},
		{"first/status=active", userlist.Filter{Status: "active"}},
		{"deep/status=active", userlist.Filter{Status: "active", Cursor: cursorAt(b, q, ws, userlist.Filter{Status: "active"}, 45_000)}},
		{"first/status=invited", userlist.Filter{Status: "invited"}},
		{"first/role=Editor", userlist.Filter{Role: "Editor"}},
		{"first/q=common", userlist.Filter{Q: "ana"}},
		{"first/q=rare", userlist.Filter{Q: "ada.abe.1"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Warm the connection's prepared statement and the cache.
			for range 5 {
				if _, err := q.List(ctx, ws, tc.f); err != nil {
					b.Fatal(err)
				}
			}
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				page, err := q.List(ctx, ws, tc.f)
				took = append(took, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Items) == 0 {
					b.Fatal("empty page")
				}
			}
			b.StopTimer()
			reportPercentiles(b, took, "page")
		})
	}
}

func reportPercentiles(b *testing.B, took []time.Duration, unit string) {
	if len(took) == 0 {
		return
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	pct := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs/"+unit)
	b.ReportMetric(pct(0.99), "p99-µs/"+unit)
}

// BenchmarkApply measures Apply with every index in place, as the live
// runner keeps them: b.N events of a synthetic history applied into fresh
// tables made by the projection's SQL, each batch a transaction
// set up as projections.Rebuild does (batches of 5000, synchronous_commit
// off; USERSD_BENCH_BATCH sets another batch size). A rebuild itself builds
// the list's indexes after its replay: see BenchmarkRebuild. It reports
// events/s. Two mixes: "onboarding", where people are invited and accept
// all the time (every index written twice per person), and "steady", where
// logins dominate. Run with -benchtime=1000000x for the full size.
func BenchmarkApply(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run(mix.name, func(b *testing.B) {
			pool, _ := pgtest.New(b)
			p := userlist.New()
			schema := "bench_" + strconv.Itoa(b.N)
			pgtest.CreateTables(b, pool, schema, p.Schema())
			projectionstest.ApplyInBatches(b, pool, schema, p.Apply, newGenerator(b.N, mix.mix).next)
		})
	}
}

// BenchmarkFold measures what Apply does in memory between its read and
// its write, folding events into rows, without PostgreSQL: the CPU cost of
// the list's rules per event, over the mixes of BenchmarkApply in batches
// of BatchSize.
func BenchmarkFold(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run(mix.name, func(b *testing.B) {
			g, f, batch := newGenerator(b.N, mix.mix), userlist.NewFolder(), projectionstest.BatchSize(b)
			b.ReportAllocs()
			b.ResetTimer()
			for folded := 0; folded < b.N; {
				b.StopTimer()
				events := g.next(min(batch, b.N-folded))
				b.StartTimer()
				if !f.Fold(events) {
					b.Fatal("an event has no case")
				}
				folded += len(events)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchMixes are the histories BenchmarkApply and BenchmarkRebuild run
// over.
var benchMixes = []struct {
	name string
	mix  mix
}{
	{"onboarding", mix{invite: 40, login: 50, role: 5, suspend: 3}},
	{"steady", mix{invite: 5, login: 85, role: 5, suspend: 3}},
}

// BenchmarkRebuild measures the whole rebuild of b.N events as
// projections.Rebuild does it (its default batch size, asynchronous
// commits, building the secondary indexes after the replay, the swap),
// from a history held in memory, so that reading the event store is not
// part of the figure. Same mixes as BenchmarkApply. For the 1,000,000-event
// figure: -bench Rebuild -benchtime 1000000x
func BenchmarkRebuild(b *testing.B) {
	for _, mix := range benchMixes {
		b.Run(mix.name, func(b *testing.B) {
			pool, _ := pgtest.New(b)
			projectionstest.Rebuild(b, pool, userlist.New(), newGenerator(b.N, mix.mix).next(b.N))
		})
	}
}

// mix is the share of each kind of event a generator draws, in percent;
// the rest are settings changes.
type mix struct{ invite, login, role, suspend int }

// generator makes a plausible history on demand: workspaces of up to 20,000
// people; each person is invited, their e-mail is sent, they accept a
// couple of batches later and log in now and then; a few change role, are
// suspended or removed, or have their invitation resent.
type generator struct {
	mix     mix
	r       *rand.Rand
	pos     uint64
	ws      uuid.UUID
	owner   uuid.UUID
	members int
	pending map[uint64][]pendingEvent // events due later, by delay: each queue is in due order
	joined  []uuid.UUID
}

type pendingEvent struct {
	due uint64
	e   domain.Event
}

func newGenerator(total int, m mix) *generator {
	return &generator{mix: m, r: rand.New(rand.NewPCG(uint64(total), 7)), pending: map[uint64][]pendingEvent{}}
}

func (g *generator) next(n int) []domain.RecordedEvent {
	out := make([]domain.RecordedEvent, 0, n)
	add := func(e domain.Event) {
		g.pos++
		out = append(out, domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: t0.Add(time.Duration(g.pos) * time.Second)}},
			StreamID: "workspace-" + g.ws.String(),
			Position: domain.Position{Commit: g.pos, Prepare: g.pos},
		})
	}
	for len(out) < n {
		if e, ok := g.due(); ok {
			add(e)
			continue
		}
		if g.ws == uuid.Nil || g.members >= 20_000 {
			g.ws, g.owner, g.members, g.joined = uuid.New(), uuid.New(), 0, nil
			add(domain.WorkspaceCreated{WorkspaceID: g.ws, Name: "WS", OwnerUserID: g.owner, OwnerEmail: "owner@example.com", OwnerName: "Owner", CreatedAt: t0})
			continue
		}
		switch x := g.r.IntN(100); {
		case x < g.mix.invite || len(g.joined) == 0:
			g.members++
			user, inv := uuid.New(), uuid.New()
			email := fmt.Sprintf("%s.%d@example.com", firstNames[g.r.IntN(len(firstNames))], g.members)
			at := t0.Add(time.Duration(g.pos) * time.Second)
			add(domain.UserInvited{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Email: email, Role: "AgentUser", InvitedBy: g.owner, InviterRole: "Admin", TokenHash: "h", InvitedAt: at, ExpiresAt: at.Add(week)})
			g.later(200, domain.InvitationEmailSent{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Attempt: 1})
			g.later(1500, domain.InvitationAccepted{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Email: email, Name: firstNames[g.r.IntN(len(firstNames))] + " " + lastNames[g.r.IntN(len(lastNames))], Role: "AgentUser", AcceptedAt: at})
			g.joined = append(g.joined, user)
		case x < g.mix.invite+g.mix.login:
			user := g.joined[g.r.IntN(len(g.joined))]
			add(domain.UserLoggedIn{WorkspaceID: g.ws, UserID: user, LoggedInAt: t0.Add(time.Duration(g.pos) * time.Second)})
		case x < g.mix.invite+g.mix.login+g.mix.role:
			user := g.joined[g.r.IntN(len(g.joined))]
			add(domain.RoleChanged{WorkspaceID: g.ws, UserID: user, FromRole: "AgentUser", ToRole: "Editor", ChangedBy: g.owner})
		case x < g.mix.invite+g.mix.login+g.mix.role+g.mix.suspend:
			user := g.joined[g.r.IntN(len(g.joined))]
			add(domain.MemberSuspended{WorkspaceID: g.ws, UserID: user})
			g.later(500, domain.MemberReactivated{WorkspaceID: g.ws, UserID: user})
		default:
			add(domain.WorkspaceSettingsChanged{WorkspaceID: g.ws, ManagersMayGrantAdmin: false})
		}
	}
	return out
}

func (g *generator) later(after uint64, e domain.Event) {
	g.pending[after] = append(g.pending[after], pendingEvent{due: g.pos + after, e: e})
}

// due takes the earliest event that is due, if any.
func (g *generator) due() (domain.Event, bool) {
	best := uint64(0)
	found := false
	for d, q := range g.pending {
		if len(q) > 0 && q[0].due <= g.pos && (!found || q[0].due < g.pending[best][0].due) {
			best, found = d, true
		}
	}
	if !found {
		return nil, false
	}
	e := g.pending[best][0].e
	g.pending[best] = g.pending[best][1:]
	return e, true
}
