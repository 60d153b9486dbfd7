package userlist_test

import (
	"context"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

// TestRebuild: a rebuild of the user list keeps the read models' rebuild
// contract (pgtest.CheckRebuild): the list's indexes are built after the
// replay; the rebuilt tables also have their statistics before the swap,
// and the finer statistics target of search comes with the tables.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	events := newGenerator(4000, mix{invite: 40, login: 40, role: 8, suspend: 6}).next(4000)
	analyzed := -1
	pgtest.CheckRebuild(t, pool, userlist.New(), events, pgtest.RebuildCheck{
		During: func(ph projections.RebuildPhase, schema string) {
			if ph != projections.RebuildSwap {
				return
			}
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = 'userlist_users' AND attname = 'search'`,
				schema).Scan(&analyzed); err != nil {
				t.Errorf("statistics: %v", err)
			}
		},
	})
	if analyzed != 1 {
		t.Errorf("statistics of the rebuilt userlist_users.search before the swap: got %d rows, want 1 (ANALYZE)", analyzed)
	}
	var target int
	if err := pool.QueryRow(ctx, `SELECT attstattarget FROM pg_attribute
		WHERE attrelid = 'public.userlist_users'::regclass AND attname = 'search'`).Scan(&target); err != nil || target != 1000 {
		t.Errorf("statistics target of search after the rebuild: got %d (%v), want 1000", target, err)
	}
}
