package benchmarks_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections/userlist"
)

const (
	sortRun      = 2 * time.Second
	sortReaders  = 4
	sortGoalMult = 1.5
)

// BenchmarkUserListByLastLogin reads pages of the same 100,000-member
// workspace as BenchmarkUserListVsPgbench (seeded through Apply, 4 in 5
// members with a login), sorted by display name, by last login (oldest
// first) and by last login newest first, from 4 readers, half first pages
// and half deep ones (16 keyset cursors of each order). The orders run
// interleaved, twice each (A B C C B A), so that drift on the shared
// machine hits all alike. ratio is the slower last-login order's p99 over
// the display-name order's p99 (issue 17: ≤ 1.5×).
func BenchmarkUserListByLastLogin(b *testing.B) {
	ctx := context.Background()
	pool, _ := pgtest.New(b)
	ws := uuid.New()
	seedUserList(b, ctx, pool, ws)
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) userlist_users, userlist_logins, userlist_workspaces"); err != nil {
		b.Fatal(err)
	}
	q := userlist.NewQueries(pool, nil)
	sorts := []string{userlist.SortDisplayName, userlist.SortLastLogin, userlist.SortLastLoginDesc}
	deep := map[string][]string{}
	for _, s := range sorts {
		deep[s] = deepCursors(b, ctx, q, ws, s)
		runReaders(b, ctx, q, ws, sortReaders, 5, s, deep[s], sortRun/4) // prepared statements, cache
	}
	lat := map[string]latencies{}
	for _, s := range append(append([]string{}, sorts...), sorts[2], sorts[1], sorts[0]) {
		lat[s] = append(lat[s], runReaders(b, ctx, q, ws, sortReaders, 5, s, deep[s], sortRun)...)
	}
	name, asc, desc := lat[userlist.SortDisplayName].Percentile(99), lat[userlist.SortLastLogin].Percentile(99), lat[userlist.SortLastLoginDesc].Percentile(99)
	ratio := max(asc, desc).Seconds() / name.Seconds()
	b.ReportMetric(us(lat[userlist.SortDisplayName].Percentile(50)), "name-p50-us")
	b.ReportMetric(us(name), "name-p99-us")
	b.ReportMetric(us(lat[userlist.SortLastLogin].Percentile(50)), "login-p50-us")
	b.ReportMetric(us(asc), "login-p99-us")
	b.ReportMetric(us(desc), "login-desc-p99-us")
	b.ReportMetric(ratio, "login/name-p99")
	summary(b, "pages of %d members from %d readers, first and deep: by name p99 %.0f µs; by last login p99 %.0f µs, newest first %.0f µs; ratio %.2f (goal ≤ %.1f: %s)",
		listMembers, sortReaders, us(name), us(asc), us(desc), ratio, sortGoalMult, verdict(ratio <= sortGoalMult))
}
