package userlist_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

// TestRebuild runs projections.Rebuild on the user list over a history the
// live tables were built from batch by batch. The tables swapped in hold
// the same rows; they were replayed with their primary keys only, got the
// list's indexes and their statistics before the swap, and have exactly the
// live tables' indexes.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	p := userlist.New()
	events := newGenerator(4000, mix{invite: 40, login: 40, role: 8, suspend: 6}).next(4000)
	for i := 0; i < len(events); i += 150 {
		apply(t, pool, "public", events[i:min(i+150, len(events))])
	}
	want := dump(t, pool, "public")
	live := pgtest.Indexes(t, pool, "public", p.Tables())
	var keys []string
	for _, def := range live {
		if strings.Contains(def, "_pkey ON ") {
			keys = append(keys, def)
		}
	}
	if len(live) != 7 || len(keys) != 3 {
		t.Fatalf("live indexes: got %q, want three primary keys and four list indexes", live)
	}

	schema := projections.RebuildSchema(p.Name())
	var phases []projections.RebuildPhase
	var replaying [][]string
	var atSwap []string
	var analyzed int
	res, err := projections.Rebuild(ctx, pool, p, projections.SliceSource(events), projections.RebuildOptions{
		BatchSize: 500,
		Progress: func(int, domain.Position) {
			if len(phases) == 1 {
				replaying = append(replaying, pgtest.Indexes(t, pool, schema, p.Tables()))
			}
		},
		Phase: func(ph projections.RebuildPhase) {
			phases = append(phases, ph)
			if ph == projections.RebuildSwap {
				atSwap = pgtest.Indexes(t, pool, schema, p.Tables())
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = 'userlist_users' AND attname = 'search'`,
					schema).Scan(&analyzed); err != nil {
					t.Errorf("statistics: %v", err)
				}
			}
		},
	})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if res.Applied != len(events) || res.IndexDuration <= 0 {
		t.Errorf("Rebuild: got %+v, want %d applied and an index build", res, len(events))
	}
	if got := dump(t, pool, "public"); got != want {
		t.Errorf("tables after the rebuild differ from the live ones:\n%s\nwant\n%s", got, want)
	}
	if want := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildIndexes, projections.RebuildCatchUp, projections.RebuildSwap}; !slices.Equal(phases, want) {
		t.Errorf("phases: got %q, want %q", phases, want)
	}
	if len(replaying) == 0 {
		t.Error("no progress during the replay")
	}
	for i, got := range replaying {
		if !slices.Equal(got, keys) {
			t.Errorf("indexes during the replay, after batch %d: got %q, want the primary keys only %q", i+1, got, keys)
			break
		}
	}
	if !slices.Equal(atSwap, live) {
		t.Errorf("indexes of the rebuilt tables before the swap: got %q, want the live ones %q", atSwap, live)
	}
	if analyzed != 1 {
		t.Errorf("statistics of the rebuilt userlist_users.search before the swap: got %d rows, want 1 (ANALYZE)", analyzed)
	}
	if got := pgtest.Indexes(t, pool, "public", p.Tables()); !slices.Equal(got, live) {
		t.Errorf("indexes after the swap: got %q, want %q", got, live)
	}
	// The finer statistics of search come with the tables, not the indexes.
	var target int
	if err := pool.QueryRow(ctx, `SELECT attstattarget FROM pg_attribute
		WHERE attrelid = 'public.userlist_users'::regclass AND attname = 'search'`).Scan(&target); err != nil || target != 1000 {
		t.Errorf("statistics target of search after the rebuild: got %d (%v), want 1000", target, err)
	}
}
