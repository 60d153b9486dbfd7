package userlist_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/userlist"
)

const week = 7 * 24 * time.Hour

// people of the lifecycle tests.
var (
	ownerEmail = "alice@example.com"
	bobEmail   = "bob@example.com"
)

type lifecycleCase struct {
	name string
	// build records the history and answers the rows Get must find in ws
	// (nil: no row), and the time the queries take as now.
	build func(w world, ws, owner, bob uuid.UUID) (want map[uuid.UUID]*userlist.Row, now time.Time)
}

func ownerRow(owner uuid.UUID) *userlist.Row {
	return &userlist.Row{UserID: owner, Name: ptr("Alice Owner"), DisplayName: "Alice Owner", Email: ownerEmail, Role: domain.RoleAdmin, Status: domain.StatusActive}
}

// invitedRow is bob's row right after the invitation recorded at `at`.
func invitedRow(bob, owner, inv uuid.UUID, role domain.Role, at time.Time) *userlist.Row {
	return &userlist.Row{
		UserID: bob, DisplayName: bobEmail, Email: bobEmail, Role: role, Status: domain.StatusInvited,
		Invitation: &userlist.Invitation{
			ID: inv, InvitedAt: at, InvitedBy: owner, ExpiresAt: at.Add(week),
			Attempt: 1, EmailStatus: userlist.EmailPending,
		},
	}
}

func activeRow(bob uuid.UUID, name string, role domain.Role) *userlist.Row {
	return &userlist.Row{UserID: bob, Name: ptr(name), DisplayName: name, Email: bobEmail, Role: role, Status: domain.StatusActive}
}

var lifecycle = []lifecycleCase{
	{"workspace created: the owner is an active Admin with a name", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		return map[uuid.UUID]*userlist.Row{owner: ownerRow(owner), bob: nil}, t0
	}},
	{"invited: no name, display is the e-mail, invitation pending", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		return map[uuid.UUID]*userlist.Row{owner: ownerRow(owner), bob: invitedRow(bob, owner, inv, domain.RoleEditor, at)}, t0
	}},
	{"e-mail sent", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1})
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.EmailStatus = userlist.EmailSent
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"e-mail failed", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1, Reason: "550"})
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.EmailStatus = userlist.EmailFailed
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"resent: new attempt pending, new expiry, expired flag cleared", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1})
		w.h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: inv, UserID: bob, Email: bobEmail, ExpiredAt: w.h.at()})
		resentAt := w.h.at()
		w.h.add(domain.InvitationResent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Email: bobEmail, Attempt: 2, ResentBy: owner, TokenHash: "h2", ResentAt: resentAt, ExpiresAt: resentAt.Add(week)})
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.Attempt, want.Invitation.ExpiresAt = 2, resentAt.Add(week)
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"outcomes of an older attempt are ignored", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		resentAt := w.h.at()
		w.h.add(domain.InvitationResent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Email: bobEmail, Attempt: 2, ResentBy: owner, TokenHash: "h2", ResentAt: resentAt, ExpiresAt: resentAt.Add(week)})
		w.h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1, Reason: "late"})
		w.h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 2})
		w.h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1, Reason: "later still"})
		w.h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: uuid.New(), UserID: bob, Attempt: 2, Reason: "another invitation"})
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.Attempt, want.Invitation.ExpiresAt = 2, resentAt.Add(week)
		want.Invitation.EmailStatus = userlist.EmailSent
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"expired by event", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: inv, UserID: bob, Email: bobEmail, ExpiredAt: w.h.at()})
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.Expired = true
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"expired by time before any event says so", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		want := invitedRow(bob, owner, inv, domain.RoleEditor, at)
		want.Invitation.Expired = true
		return map[uuid.UUID]*userlist.Row{bob: want}, at.Add(week) // expires_at <= now
	}},
	{"revoked: the row is gone", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationRevoked{WorkspaceID: ws, InvitationID: inv, UserID: bob, Email: bobEmail, Role: "Editor"})
		return map[uuid.UUID]*userlist.Row{owner: ownerRow(owner), bob: nil}, t0
	}},
	{"accepted: named, active, no invitation", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1})
		w.accept(ws, inv, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleEditor)}, t0
	}},
	{"role changed on a member", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Manager", ChangedBy: owner})
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleManager)}, t0
	}},
	{"role changed on an invitation", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Monitor", ChangedBy: owner})
		return map[uuid.UUID]*userlist.Row{bob: invitedRow(bob, owner, inv, domain.RoleMonitor, at)}, t0
	}},
	{"temporary role: the row shows its end", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		until := t0.Add(week)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		want := activeRow(bob, "Bob Builder", domain.RoleAdmin)
		want.RoleUntil = &until
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"temporary role ended: the previous role, no end", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		until := t0.Add(week)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		w.h.add(domain.RoleGrantExpired{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Admin", ToRole: "Editor", Until: until})
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleEditor)}, t0
	}},
	{"temporary role kept by the last-Admin rule: the role, no end", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		until := t0.Add(week)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		w.h.add(domain.RoleGrantExpiryRefused{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Admin", PreviousRole: "Editor", Until: until, Reason: "last_admin"})
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleAdmin)}, t0
	}},
	{"a later role change clears the end", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		until := t0.Add(week)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Admin", ToRole: "Manager", ChangedBy: owner})
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleManager)}, t0
	}},
	{"an invitation's temporary role goes on after acceptance", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		until := t0.Add(week)
		w.h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, Email: bobEmail, FromRole: "Editor", ToRole: "Manager", ChangedBy: owner, Until: &until})
		w.accept(ws, inv, bob, bobEmail, "Bob Builder", domain.RoleManager)
		want := activeRow(bob, "Bob Builder", domain.RoleManager)
		want.RoleUntil = &until
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"removed: the row is gone, others stay", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Editor"})
		return map[uuid.UUID]*userlist.Row{owner: ownerRow(owner), bob: nil}, t0
	}},
	{"suspended", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Editor"})
		want := activeRow(bob, "Bob Builder", domain.RoleEditor)
		want.Status = domain.StatusSuspended
		return map[uuid.UUID]*userlist.Row{bob: want}, t0
	}},
	{"reactivated", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Editor"})
		w.h.add(domain.MemberReactivated{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Editor"})
		return map[uuid.UUID]*userlist.Row{bob: activeRow(bob, "Bob Builder", domain.RoleEditor)}, t0
	}},
	{"settings and accounts change nothing", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.WorkspaceSettingsChanged{WorkspaceID: ws, ManagersMayGrantAdmin: false})
		w.h.add(domain.AccountRegistered{UserID: uuid.New(), Email: "carol@example.com"})
		return map[uuid.UUID]*userlist.Row{owner: ownerRow(owner), bob: activeRow(bob, "Bob Builder", domain.RoleEditor)}, t0
	}},
	{"logins: the latest is kept, strangers are ignored", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		later, earlier := t0.Add(48*time.Hour), t0.Add(24*time.Hour)
		w.h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: bob, LoggedInAt: later})
		w.h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: bob, LoggedInAt: earlier})
		w.h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: owner, LoggedInAt: earlier})
		stranger := uuid.New()
		w.h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: stranger, LoggedInAt: later})
		want, o := activeRow(bob, "Bob Builder", domain.RoleEditor), ownerRow(owner)
		want.LastLoginAt, o.LastLoginAt = &later, &earlier
		return map[uuid.UUID]*userlist.Row{owner: o, bob: want, stranger: nil}, t0
	}},
	{"a removed person invited again starts afresh", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		w.join(ws, owner, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		w.h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: bob, LoggedInAt: t0.Add(time.Hour)})
		w.h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Email: bobEmail, Role: "Editor"})
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleAgentUser)
		return map[uuid.UUID]*userlist.Row{bob: invitedRow(bob, owner, inv, domain.RoleAgentUser, at)}, t0
	}},
	{"invited anew after expiry: the old invitation's outcomes are ignored", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		old := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: old, UserID: bob, Email: bobEmail, ExpiredAt: w.h.at()})
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleManager)
		w.h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: old, UserID: bob, Attempt: 1, Reason: "old"})
		w.h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: old, UserID: bob, Email: bobEmail, ExpiredAt: w.h.at()})
		return map[uuid.UUID]*userlist.Row{bob: invitedRow(bob, owner, inv, domain.RoleManager, at)}, t0
	}},
	{"accepting a replaced invitation changes nothing", func(w world, ws, owner, bob uuid.UUID) (map[uuid.UUID]*userlist.Row, time.Time) {
		old := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: old, UserID: bob, Email: bobEmail, ExpiredAt: w.h.at()})
		at := w.h.at()
		inv := w.invite(ws, owner, bob, bobEmail, domain.RoleEditor)
		w.accept(ws, old, bob, bobEmail, "Bob Builder", domain.RoleEditor)
		return map[uuid.UUID]*userlist.Row{bob: invitedRow(bob, owner, inv, domain.RoleEditor, at)}, t0
	}},
}

// queries runs f with the queries reading schema.
func queries(t testing.TB, pool *pgxpool.Pool, schema string, now time.Time, f func(q *userlist.Queries)) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		f(userlist.NewQueries(tx, fixedClock(now)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	for _, tc := range lifecycle {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.New(t)
			ctx := context.Background()

			h, w := newWorld()
			ws, owner, bob := uuid.New(), uuid.New(), uuid.New()
			// Another workspace, where bob is a member, must not change.
			other, otherOwner := uuid.New(), uuid.New()
			w.create(other, otherOwner, "olga@example.com", "Olga", "Other")
			w.join(other, otherOwner, bob, bobEmail, "Robert", domain.RoleAgentUser)
			w.create(ws, owner, ownerEmail, "Alice Owner", "Acme")
			want, now := tc.build(w, ws, owner, bob)

			pgtest.ApplyInEveryBatching(t, pool, userlist.New(), h.events, func(schema string) {
				queries(t, pool, schema, now, func(q *userlist.Queries) {
					for user, wantRow := range want {
						got, found, err := q.Get(ctx, ws, user)
						if err != nil {
							t.Fatalf("%s: Get: %v", schema, err)
						}
						switch {
						case wantRow == nil && found:
							t.Errorf("%s: Get(%s) found %s, want no row", schema, user, describe(got))
						case wantRow != nil && !found:
							t.Errorf("%s: Get(%s) found no row, want %s", schema, user, describe(*wantRow))
						case wantRow != nil && !sameRow(got, *wantRow):
							t.Errorf("%s: Get(%s)\n got %s\nwant %s", schema, user, describe(got), describe(*wantRow))
						}
					}
					// The list shows the same rows as Get.
					page, err := q.List(ctx, ws, userlist.Filter{Limit: 500})
					if err != nil {
						t.Fatalf("%s: List: %v", schema, err)
					}
					for _, r := range page.Items {
						g, _, _ := q.Get(ctx, ws, r.UserID)
						if !sameRow(r, g) {
							t.Errorf("%s: List row %s differs from Get %s", schema, describe(r), describe(g))
						}
						if wantRow, ok := want[r.UserID]; ok && wantRow == nil {
							t.Errorf("%s: List shows %s, want no row", schema, describe(r))
						}
					}
					// bob's row in the other workspace is untouched.
					got, found, err := q.Get(ctx, other, bob)
					if err != nil || !found || got.DisplayName != "Robert" || got.Status != domain.StatusActive {
						t.Errorf("%s: bob in the other workspace: got %s found %v err %v, want Robert, active", schema, describe(got), found, err)
					}
				})
			})
		})
	}
}

// sameRow compares rows with times as instants.
func sameRow(a, b userlist.Row) bool {
	norm := func(r userlist.Row) userlist.Row {
		if r.LastLoginAt != nil {
			r.LastLoginAt = ptr(r.LastLoginAt.UTC())
		}
		if r.RoleUntil != nil {
			r.RoleUntil = ptr(r.RoleUntil.UTC())
		}
		if r.Invitation != nil {
			inv := *r.Invitation
			inv.InvitedAt, inv.ExpiresAt = inv.InvitedAt.UTC(), inv.ExpiresAt.UTC()
			r.Invitation = &inv
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// TestApplyInAnyBatching applies one long, mixed history in many batchings
// and replays, and expects the same tables each time.
func TestApplyInAnyBatching(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	h, w := newWorld()
	var wss []uuid.UUID
	for i := range 3 {
		ws, owner := uuid.New(), uuid.New()
		wss = append(wss, ws)
		w.create(ws, owner, "owner"+string(rune('a'+i))+"@example.com", "Owner", "WS")
		for j := range 12 {
			user := uuid.New()
			email := "p" + string(rune('a'+j)) + "@example.com"
			inv := w.invite(ws, owner, user, email, domain.RoleEditor)
			switch j % 6 {
			case 0:
				w.accept(ws, inv, user, email, "Person", domain.RoleEditor)
				h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: user, LoggedInAt: h.at()})
				h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: user})
			case 1:
				h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: user, Attempt: 1})
				h.add(domain.InvitationRevoked{WorkspaceID: ws, InvitationID: inv, UserID: user})
				w.invite(ws, owner, user, email, domain.RoleMonitor)
			case 2:
				w.accept(ws, inv, user, email, "Person", domain.RoleEditor)
				h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: user})
			case 3:
				h.add(domain.InvitationResent{WorkspaceID: ws, InvitationID: inv, UserID: user, Attempt: 2, ExpiresAt: h.at().Add(week)})
				h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: user, Attempt: 2})
			case 4:
				until := h.at().Add(week)
				h.add(domain.RoleChanged{WorkspaceID: ws, UserID: user, ToRole: "Admin", Until: &until})
				w.accept(ws, inv, user, email, "Person", domain.RoleAdmin)
				if j%12 == 4 {
					h.add(domain.RoleGrantExpired{WorkspaceID: ws, UserID: user, FromRole: "Admin", ToRole: "Editor", Until: until})
				}
			}
		}
	}
	pgtest.CheckBatchings(t, pool, userlist.New(), h.events, 1)
}

// TestCreateTablesInFreshSchema: the projection's SQL makes working tables
// in a new schema, and Apply with that search_path fills them only.
func TestCreateTablesInFreshSchema(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h, w := newWorld()
	ws, owner := uuid.New(), uuid.New()
	w.create(ws, owner, ownerEmail, "Alice Owner", "Acme")
	pgtest.ApplyInFreshSchema(t, pool, "rebuild_1", userlist.New(), h.events)

	queries(t, pool, "rebuild_1", t0, func(q *userlist.Queries) {
		got, found, err := q.Get(ctx, ws, owner)
		if err != nil || !found || !sameRow(got, *ownerRow(owner)) {
			t.Errorf("Get in rebuild_1: %s found %v err %v, want %s", describe(got), found, err, describe(*ownerRow(owner)))
		}
	})
}

func TestProjectionIdentity(t *testing.T) {
	t.Parallel()
	p := userlist.New()
	pgtest.CheckIdentity(t, p, "userlist", []string{"userlist_users", "userlist_logins", "userlist_workspaces"})
	if s := p.Schema(); s.Tables == "" || s.Indexes == "" {
		t.Errorf("Schema() = %+v, want the tables and, apart, the list's indexes (a rebuild builds them after its replay)", s)
	}
}
