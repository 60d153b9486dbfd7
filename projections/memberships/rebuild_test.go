package memberships_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/memberships"
)

// TestRebuild: a rebuild of the memberships keeps the read models' rebuild
// contract (pgtest.CheckRebuild) over a generated history.
func TestRebuild(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	pgtest.CheckRebuild(t, pool, memberships.New(), newGenerator(4000).next(4000), pgtest.RebuildCheck{})
}

// TestRebuildInMemoryEdges: the rebuild folds the history in memory
// (projections.Replayer) and must leave what Apply leaves event by event:
// accounts registered, erased, deleted and registered again (the first
// address stays, a deletion clears it for good), a member removed and
// joining again, a role change of a pending invitation (no row), patches
// of rows made batches before (batches of 3).
func TestRebuildInMemoryEdges(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	h := &history{}
	ann, bob, cy, dee := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	ws := uuid.New()
	h.annJoinsBob(ws, ann, bob)
	h.add(domain.RoleChanged{WorkspaceID: ws, UserID: ann, ToRole: string(domain.RoleManager)})
	h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: ann})
	h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: ann})
	h.add(domain.RoleChanged{WorkspaceID: ws, UserID: ann, ToRole: string(domain.RoleAdmin)}) // no row: none made
	h.join(ws, ann, domain.RoleMonitor)
	h.add(domain.MemberReactivated{WorkspaceID: ws, UserID: ann})
	h.invite(ws, dee, domain.RoleEditor)
	h.add(domain.RoleChanged{WorkspaceID: ws, UserID: dee, ToRole: string(domain.RoleAdmin)}) // pending: no row
	h.add(domain.AccountRegistered{UserID: cy, Email: ""})
	h.erased(cy)
	h.add(domain.AccountDeleted{UserID: cy, DeletedAt: t0})
	h.add(domain.AccountRegistered{UserID: cy, Email: "cy@example.com"}) // after the deletion: stays cleared
	h.add(domain.AccountRegistered{UserID: bob, Email: "other@example.com"})
	h.add(domain.AccountDeleted{UserID: bob, DeletedAt: t0.Add(time.Hour)})
	h.add(domain.AccountDeleted{UserID: bob, DeletedAt: t0.Add(2 * time.Hour)}) // the first time stays
	h.add(domain.AccountDeleted{UserID: uuid.New(), DeletedAt: t0})             // never registered
	pgtest.CheckRebuild(t, pool, memberships.New(), h.events, pgtest.RebuildCheck{LiveBatch: 1, RebuildBatch: 3})
}
