package userlist_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/userlist"
)

// A deleted account's rows go in every workspace, even one whose removal
// the read model never saw; everyone else's stay. Events read after the
// erasure (personal values "") apply as well, in every batching.
func TestAccountDeletedDropsThePersonEverywhere(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h, w := newWorld()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	oa, ob, oc, ann := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	w.create(a, oa, "oa@example.com", "Owner A", "A")
	w.create(b, ob, "ob@example.com", "Owner B", "B")
	w.create(c, oc, "oc@example.com", "Owner C", "C")
	// Ann's events as read after her key was destroyed: no address, no name.
	w.join(a, oa, ann, "", "", domain.RoleEditor)
	h.events[len(h.events)-1].Erased = []uuid.UUID{ann}
	h.add(domain.UserLoggedIn{WorkspaceID: a, UserID: ann, LoggedInAt: h.at()})
	invB := w.invite(b, ob, ann, "", domain.RoleMonitor)
	w.join(c, oc, ann, "", "", domain.RoleManager)
	h.add(domain.UserLoggedIn{WorkspaceID: c, UserID: ann, LoggedInAt: h.at()})
	for range 4 {
		w.join(a, oa, uuid.New(), "x"+uuid.NewString()[:6]+"@example.com", "X", domain.RoleMonitor)
	}
	h.add(domain.MemberRemoved{WorkspaceID: a, UserID: ann, Reason: domain.ReasonAccountDeleted})
	h.add(domain.InvitationRevoked{WorkspaceID: b, InvitationID: invB, UserID: ann, Reason: domain.ReasonAccountDeleted})
	// No removal from c: the AccountDeleted alone must drop that row.
	h.add(domain.AccountDeleted{UserID: ann, DeletedAt: h.at()})
	for range 3 {
		w.join(b, ob, uuid.New(), "y"+uuid.NewString()[:6]+"@example.com", "Y", domain.RoleMonitor)
	}

	pgtest.CheckBatchings(t, pool, userlist.New(), h.events, 1)
	var users, logins, others int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM userlist_users WHERE user_id = $1),
		(SELECT count(*) FROM userlist_logins WHERE user_id = $1),
		(SELECT count(*) FROM userlist_users WHERE user_id <> $1)`, ann).Scan(&users, &logins, &others); err != nil {
		t.Fatal(err)
	}
	if users != 0 || logins != 0 {
		t.Errorf("ann keeps %d rows and %d logins, want none", users, logins)
	}
	if others != 3+4+3 {
		t.Errorf("%d other rows, want %d", others, 3+4+3)
	}
	rows, err := userlist.NewQueries(pool, nil).Person(ctx, ann)
	if err != nil || len(rows) != 0 {
		t.Errorf("Person(ann) = %v, %v; want no rows", rows, err)
	}
}

func TestPersonAnswersEveryWorkspace(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h, w := newWorld()
	a, b, oa, ob, ann := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	w.create(a, oa, "oa@example.com", "Owner A", "A")
	w.create(b, ob, "ob@example.com", "Owner B", "B")
	w.join(a, oa, ann, "ann@example.com", "Ann", domain.RoleEditor)
	w.invite(b, ob, ann, "ann@example.com", domain.RoleMonitor)
	apply(t, pool, "public", h.events)
	rows, err := userlist.NewQueries(pool, nil).Person(ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uuid.UUID]domain.Status{}
	for _, r := range rows {
		got[r.WorkspaceID] = r.Status
	}
	if len(rows) != 2 || got[a] != domain.StatusActive || got[b] != domain.StatusInvited {
		t.Errorf("Person(ann) = %+v, want active in A and invited to B", rows)
	}
}
