package benchmarks_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
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
		deep[s] = sortedCursors(b, ctx, q, ws, s)
		runSorted(b, ctx, q, ws, s, deep[s], sortRun/4) // prepared statements, cache
	}
	lat := map[string]latencies{}
	for _, s := range append(append([]string{}, sorts...), sorts[2], sorts[1], sorts[0]) {
		lat[s] = append(lat[s], runSorted(b, ctx, q, ws, s, deep[s], sortRun)...)
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

// sortedCursors pages through the whole list in one order (pages of the
// largest size, whose cursors serve any page size) and answers
// listDeepCursors cursors spread from a tenth of the way to the end.
func sortedCursors(b *testing.B, ctx context.Context, q *userlist.Queries, ws uuid.UUID, sort string) []string {
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
		b.Fatalf("only %d pages sorted by %s", len(all)+1, sort)
	}
	lo := len(all) / 10
	out := make([]string, listDeepCursors)
	for i := range out {
		out[i] = all[lo+i*(len(all)-1-lo)/(listDeepCursors-1)]
	}
	return out
}

// runSorted reads pages in one order from sortReaders goroutines for d,
// half first pages and half deep ones, and answers each read's latency.
func runSorted(b *testing.B, ctx context.Context, q *userlist.Queries, ws uuid.UUID, sort string, deep []string, d time.Duration) latencies {
	var (
		mu  sync.Mutex
		all latencies
		wg  sync.WaitGroup
	)
	failed := make(chan error, sortReaders)
	end := time.Now().Add(d)
	for i := range sortReaders {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 5))
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
					err = fmt.Errorf("sorted by %s: a page of %d rows, want %d", sort, len(page.Items), userlist.DefaultLimit)
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
