package benchmarks_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
	historymodel "github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

const (
	asOfGoalRatio = 2.0
	asOfReads     = 2000 // pages per side, interleaved
	asOfDeepPages = 16
)

// BenchmarkUserListAsOf compares a page of the list as of a past position
// (projections/history, membership intervals) with a page of the current
// list (projections/userlist) on the same workspace, in the same run:
// USERSD_BENCH_ASOF_MEMBERS members (default 100,000) and
// USERSD_BENCH_ASOF_EVENTS events of history (default 1,000,000: joins, then
// logins, role changes, suspensions and reactivations at random), applied to
// both read models through Apply. The as-of moment is the middle of the
// history. Each side reads 2,000 pages of 50 (half the first page, half a
// deep page after one of 16 cursors spread over its list), one reader,
// the sides interleaved. Goal: as-of p99 ≤ 2× the current list's p99.
func BenchmarkUserListAsOf(b *testing.B) {
	members := testenv.PositiveInt(b, "USERSD_BENCH_ASOF_MEMBERS", 100_000)
	events := testenv.PositiveInt(b, "USERSD_BENCH_ASOF_EVENTS", 1_000_000)
	ctx := context.Background()
	pool, _ := pgtest.New(b)
	ws := uuid.New()
	start := time.Now()
	mid := seedAsOf(b, ctx, pool, ws, members, events)
	var intervals int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM membership_intervals").Scan(&intervals); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d members, %d events (%d intervals) through Apply in %s", members, events, intervals, time.Since(start).Round(time.Second))

	cur := userlist.NewQueries(pool, nil)
	past := historymodel.NewQueries(pool)
	at := historymodel.AsOf{Position: mid}
	// Deep pages start after cursors spread over each list (a cursor is
	// bound to its filter's status, role and text, not to the page size).
	curPages := spread(b, func(c string) (userlist.Page, error) {
		return cur.List(ctx, ws, userlist.Filter{Limit: 100, Cursor: c})
	})
	pastPages := spread(b, func(c string) (userlist.Page, error) {
		return past.List(ctx, ws, at, userlist.Filter{Limit: 100, Cursor: c})
	})
	var curLat, pastLat latencies
	r := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for range b.N {
		curLat, pastLat = curLat[:0], pastLat[:0]
		for i := range asOfReads {
			deep := r.IntN(2) == 0
			k := r.IntN(asOfDeepPages)
			for side := range 2 {
				var c string
				t0 := time.Now()
				var err error
				if (i+side)%2 == 0 {
					if deep {
						c = curPages[k]
					}
					_, err = cur.List(ctx, ws, userlist.Filter{Cursor: c})
					curLat = append(curLat, time.Since(t0))
				} else {
					if deep {
						c = pastPages[k]
					}
					_, err = past.List(ctx, ws, at, userlist.Filter{Cursor: c})
					pastLat = append(pastLat, time.Since(t0))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	cp99, pp99 := curLat.Percentile(99), pastLat.Percentile(99)
	ratio := float64(pp99) / float64(cp99)
	b.ReportMetric(us(pastLat.Percentile(50)), "asof-p50-us")
	b.ReportMetric(us(pp99), "asof-p99-us")
	b.ReportMetric(us(curLat.Percentile(50)), "current-p50-us")
	b.ReportMetric(us(cp99), "current-p99-us")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(float64(members), "members")
	b.ReportMetric(float64(events), "events")
	summary(b, "as of p99 %.0f µs, current p99 %.0f µs: ratio %.2f, goal ≤ %.1f %s (%d members, %d events)",
		us(pp99), us(cp99), ratio, asOfGoalRatio, verdict(ratio <= asOfGoalRatio), members, events)
}

// spread pages through a list and answers asOfDeepPages cursors spread
// from a tenth of the way to the end.
func spread(b *testing.B, list func(cursor string) (userlist.Page, error)) []string {
	all := nextCursors(b, list)
	if len(all) < asOfDeepPages {
		b.Fatalf("only %d pages of 100", len(all)+1)
	}
	lo := len(all) / 10
	out := make([]string, asOfDeepPages)
	for i := range out {
		out[i] = all[lo+i*(len(all)-1-lo)/(asOfDeepPages-1)]
	}
	return out
}

// seedAsOf applies a history of one workspace to the user list and the
// history, in batches of 5,000 as a rebuild would: the members join (invited,
// then, but for one in twenty, accepted), then the rest of the events are
// logins (three in four), role changes and suspensions or reactivations of
// random members. It then VACUUMs and ANALYZEs the tables the benchmarks
// read, and answers the position halfway through.
func seedAsOf(b testing.TB, ctx context.Context, pool *pgxpool.Pool, ws uuid.UUID, members, events int) domain.Position {
	r := rand.New(rand.NewPCG(42, 2))
	var (
		joined []uuid.UUID
		status = map[uuid.UUID]bool{} // suspended
	)
	s := &wsSeed{tb: b, ctx: ctx, pool: pool, models: []projections.Projection{userlist.New(), historymodel.New()},
		ws: ws, now: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), tick: time.Second, mark: uint64(events / 2)}
	s.create()
	for i := 1; i < members; i++ {
		if m, ok := s.member(r, i); ok {
			joined = append(joined, m.user)
		}
	}
	roles := []string{"Manager", "Editor", "Monitor", "AgentUser"}
	for int(s.seq) < events {
		user := joined[r.IntN(len(joined))]
		switch n := r.IntN(100); {
		case n < 75:
			s.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: user, LoggedInAt: s.now})
		case n < 90:
			s.add(domain.RoleChanged{WorkspaceID: ws, UserID: user, ToRole: roles[r.IntN(len(roles))]})
		case status[user]:
			status[user] = false
			s.add(domain.MemberReactivated{WorkspaceID: ws, UserID: user})
		default:
			status[user] = true
			s.add(domain.MemberSuspended{WorkspaceID: ws, UserID: user})
		}
	}
	s.flush()
	if s.marked.IsZero() {
		b.Fatalf("%d events do not reach past the %d members' joining", events, members)
	}
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) userlist_users, userlist_logins, membership_intervals"); err != nil {
		b.Fatal(err)
	}
	return s.marked
}

// nextCursors pages through a list and answers the cursor of every page
// after the first, in order.
func nextCursors(tb testing.TB, list func(cursor string) (userlist.Page, error)) []string {
	tb.Helper()
	var all []string
	cursor := ""
	for {
		page, err := list(cursor)
		if err != nil {
			tb.Fatal(err)
		}
		if page.NextCursor == "" {
			return all
		}
		all = append(all, page.NextCursor)
		cursor = page.NextCursor
	}
}
