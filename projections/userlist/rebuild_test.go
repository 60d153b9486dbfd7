package userlist_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
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

// TestRebuildInMemoryEdges: the rebuild folds the history in memory
// (projections.Replayer) and must leave what Apply leaves, batch by batch,
// for the cases the fold handles apart: a person removed and re-invited
// (their last login forgotten), a revoked invitation invited anew, an
// erased person's events (no address), an account deleted with rows left
// in a workspace whose removal the list never saw, and logins in every
// state, each across the rebuild's batch boundaries (batches of 3).
func TestRebuildInMemoryEdges(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	h, w := newWorld()
	a, b := uuid.New(), uuid.New()
	oa, ob, ann, bob, eve := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	w.create(a, oa, "oa@example.com", "Owner A", "A")
	w.create(b, ob, "ob@example.com", "", "B")
	// Ann joins, logs in, is removed, is invited again: her row starts
	// anew, without the old login; she accepts and logs in again.
	w.join(a, oa, ann, "ann@example.com", "Ann", domain.RoleEditor)
	h.add(domain.UserLoggedIn{WorkspaceID: a, UserID: ann, LoggedInAt: h.at()})
	h.add(domain.MemberRemoved{WorkspaceID: a, UserID: ann})
	inv := w.invite(a, oa, ann, "ann@example.com", domain.RoleMonitor)
	h.add(domain.InvitationEmailSent{WorkspaceID: a, InvitationID: inv, UserID: ann, Attempt: 1})
	w.accept(a, inv, ann, "ann@example.com", "Ann", domain.RoleMonitor)
	h.add(domain.UserLoggedIn{WorkspaceID: a, UserID: ann, LoggedInAt: h.at()})
	// An earlier login read late changes nothing.
	h.add(domain.UserLoggedIn{WorkspaceID: a, UserID: ann, LoggedInAt: t0})
	// Bob's invitation is revoked and he is invited again, still pending.
	invBob := w.invite(b, ob, bob, "bob@example.com", domain.RoleEditor)
	h.add(domain.InvitationRevoked{WorkspaceID: b, InvitationID: invBob, UserID: bob})
	w.invite(b, ob, bob, "bob@example.com", domain.RoleManager)
	// Eve's events as read after her key was destroyed, in both
	// workspaces; her account is deleted after a removal from a only.
	w.join(a, oa, eve, "", "", domain.RoleEditor)
	h.events[len(h.events)-1].Erased = []uuid.UUID{eve}
	w.join(b, ob, eve, "", "", domain.RoleEditor)
	h.events[len(h.events)-1].Erased = []uuid.UUID{eve}
	h.add(domain.UserLoggedIn{WorkspaceID: b, UserID: eve, LoggedInAt: h.at()})
	h.add(domain.MemberRemoved{WorkspaceID: a, UserID: eve, Reason: domain.ReasonAccountDeleted})
	h.add(domain.AccountDeleted{UserID: eve, DeletedAt: h.at()})
	h.add(domain.MemberSuspended{WorkspaceID: a, UserID: ann})

	pgtest.CheckRebuild(t, pool, userlist.New(), h.events, pgtest.RebuildCheck{LiveBatch: 1, RebuildBatch: 3})
	var users, logins int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM userlist_users), (SELECT count(*) FROM userlist_logins)`).Scan(&users, &logins); err != nil || users != 4 || logins != 4 {
		t.Errorf("rows after the rebuild: %d users, %d logins (%v), want 4 of each (two owners, Ann, Bob)", users, logins, err)
	}
}
