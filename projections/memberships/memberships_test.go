package memberships_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/memberships"
)

// want is what the queries should answer for bob in the workspace "Acme".
type want struct {
	found  bool
	role   domain.Role
	status domain.Status
}

var (
	notMember = want{}
	active    = func(r domain.Role) want { return want{true, r, domain.StatusActive} }
	suspended = func(r domain.Role) want { return want{true, r, domain.StatusSuspended} }
)

var lifecycle = []struct {
	name  string
	build func(h *history, ws, owner, bob uuid.UUID)
	want  want
}{
	{"never invited", func(h *history, ws, owner, bob uuid.UUID) {}, notMember},
	{"invited is not a member", func(h *history, ws, owner, bob uuid.UUID) {
		h.invite(ws, bob, domain.RoleEditor)
	}, notMember},
	{"role changed on an invitation: still not a member", func(h *history, ws, owner, bob uuid.UUID) {
		h.invite(ws, bob, domain.RoleEditor)
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner})
	}, notMember},
	{"accepted", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
	}, active(domain.RoleEditor)},
	{"accepted with the role changed while invited", func(h *history, ws, owner, bob uuid.UUID) {
		inv := h.invite(ws, bob, domain.RoleEditor)
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Editor", ToRole: "Monitor", ChangedBy: owner})
		h.accept(ws, inv, bob, domain.RoleMonitor)
	}, active(domain.RoleMonitor)},
	{"role changed", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Editor", ToRole: "Manager", ChangedBy: owner})
	}, active(domain.RoleManager)},
	{"temporary role ended: the previous role is back", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		h.add(domain.RoleGrantExpired{WorkspaceID: ws, UserID: bob, FromRole: "Admin", ToRole: "Editor", Until: until})
	}, active(domain.RoleEditor)},
	{"temporary role kept by the last-Admin rule", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner, Until: &until})
		h.add(domain.RoleGrantExpiryRefused{WorkspaceID: ws, UserID: bob, Role: "Admin", PreviousRole: "Editor", Until: until, Reason: "last_admin"})
	}, active(domain.RoleAdmin)},
	{"suspended: no permissions", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleAdmin)
		h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob, Role: "Admin"})
	}, suspended(domain.RoleAdmin)},
	{"role changed while suspended", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleAdmin)
		h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob, Role: "Admin"})
		h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Admin", ToRole: "AgentUser", ChangedBy: owner})
	}, suspended(domain.RoleAgentUser)},
	{"reactivated", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob})
		h.add(domain.MemberReactivated{WorkspaceID: ws, UserID: bob})
	}, active(domain.RoleEditor)},
	{"removed", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Role: "Editor"})
	}, notMember},
	{"removed while suspended", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: bob})
		h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Role: "Editor"})
	}, notMember},
	{"removed, then invited again", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Role: "Editor"})
		h.invite(ws, bob, domain.RoleMonitor)
	}, notMember},
	{"removed, then invited again and accepted", func(h *history, ws, owner, bob uuid.UUID) {
		h.join(ws, bob, domain.RoleEditor)
		h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: bob, Role: "Editor"})
		h.join(ws, bob, domain.RoleMonitor)
	}, active(domain.RoleMonitor)},
	{"revoked invitation", func(h *history, ws, owner, bob uuid.UUID) {
		inv := h.invite(ws, bob, domain.RoleEditor)
		h.add(domain.InvitationRevoked{WorkspaceID: ws, InvitationID: inv, UserID: bob})
	}, notMember},
	{"invitation events, settings and logins change nothing", func(h *history, ws, owner, bob uuid.UUID) {
		inv := h.invite(ws, bob, domain.RoleEditor)
		h.add(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 1})
		h.add(domain.InvitationExpired{WorkspaceID: ws, InvitationID: inv, UserID: bob})
		h.add(domain.InvitationResent{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 2})
		h.add(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: bob, Attempt: 2})
		h.accept(ws, inv, bob, domain.RoleEditor)
		h.add(domain.WorkspaceSettingsChanged{WorkspaceID: ws, ManagersMayGrantAdmin: false})
		h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: bob, LoggedInAt: t0})
		h.add(domain.AccountRegistered{UserID: uuid.New(), Email: "x@example.com"})
	}, active(domain.RoleEditor)},
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	for _, tc := range lifecycle {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.New(t)
			ctx := context.Background()
			h := &history{}
			ws, owner, bob := uuid.New(), uuid.New(), uuid.New()
			// bob is a Monitor of another workspace, which must not change.
			other := uuid.New()
			h.create(other, uuid.New(), "beta")
			h.join(other, bob, domain.RoleMonitor)
			h.create(ws, owner, "Acme")
			tc.build(h, ws, owner, bob)

			pgtest.ApplyInEveryBatching(t, pool, memberships.New(), h.events, func(schema string) {
				queries(t, pool, schema, func(q *memberships.Queries) {
					role, status, perms, found, err := q.Permissions(ctx, ws, bob)
					if err != nil {
						t.Fatalf("%s: Permissions: %v", schema, err)
					}
					var wantPerms []domain.Permission
					switch {
					case !tc.want.found:
					case tc.want.status == domain.StatusActive:
						wantPerms = tc.want.role.Permissions()
					default:
						wantPerms = []domain.Permission{}
					}
					if found != tc.want.found || role != tc.want.role || status != tc.want.status || !reflect.DeepEqual(perms, wantPerms) {
						t.Errorf("%s: Permissions = %q %q %q found %v, want %q %q %q found %v",
							schema, role, status, perms, found, tc.want.role, tc.want.status, wantPerms, tc.want.found)
					}

					got, err := q.ForUser(ctx, bob)
					if err != nil {
						t.Fatalf("%s: ForUser: %v", schema, err)
					}
					wantList := []memberships.Membership{}
					if tc.want.found {
						wantList = append(wantList, memberships.Membership{WorkspaceID: ws, Name: "Acme", Role: tc.want.role, Status: tc.want.status})
					}
					wantList = append(wantList, memberships.Membership{WorkspaceID: other, Name: "beta", Role: domain.RoleMonitor, Status: domain.StatusActive})
					if !reflect.DeepEqual(got, wantList) {
						t.Errorf("%s: ForUser(bob) = %+v, want %+v", schema, got, wantList)
					}

					owners, err := q.ForUser(ctx, owner)
					if want := []memberships.Membership{{WorkspaceID: ws, Name: "Acme", Role: domain.RoleAdmin, Status: domain.StatusActive}}; err != nil || !reflect.DeepEqual(owners, want) {
						t.Errorf("%s: ForUser(owner) = %+v (err %v), want %+v", schema, owners, err, want)
					}
				})
			})
		})
	}
}

func TestForUserOrderAndStrangers(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h := &history{}
	user := uuid.New()
	names := []string{"zeta", "Alpha", "beta", "Gamma"}
	ids := map[string]uuid.UUID{}
	for _, n := range names {
		ws := uuid.New()
		ids[n] = ws
		h.create(ws, uuid.New(), n)
		h.join(ws, user, domain.RoleAgentUser)
	}
	apply(t, pool, "public", h.events)
	q := memberships.NewQueries(pool)
	got, err := q.ForUser(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range got {
		order = append(order, m.Name)
		if m.WorkspaceID != ids[m.Name] {
			t.Errorf("%s: workspace %s, want %s", m.Name, m.WorkspaceID, ids[m.Name])
		}
	}
	if fmt.Sprint(order) != "[Alpha beta Gamma zeta]" {
		t.Errorf("order %v, want by name ignoring case [Alpha beta Gamma zeta]", order)
	}
	stranger, err := q.ForUser(ctx, uuid.New())
	if err != nil || stranger == nil || len(stranger) != 0 {
		t.Errorf("ForUser(stranger) = %#v (err %v), want an empty, non-nil list", stranger, err)
	}
	if _, _, perms, found, err := q.Permissions(ctx, uuid.New(), user); err != nil || found || perms != nil {
		t.Errorf("Permissions in an unknown workspace: perms %v found %v err %v, want nothing", perms, found, err)
	}
}

// TestApplyInAnyBatching applies a long mixed history in several batchings
// and replays and expects the same tables.
func TestApplyInAnyBatching(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	h := &history{}
	for range 3 {
		ws, owner := uuid.New(), uuid.New()
		h.create(ws, owner, "WS")
		for j := range 12 {
			user := uuid.New()
			inv := h.invite(ws, user, domain.RoleEditor)
			switch j % 6 {
			case 0:
				h.accept(ws, inv, user, domain.RoleEditor)
				h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: user})
			case 1:
				h.add(domain.RoleChanged{WorkspaceID: ws, UserID: user, ToRole: "Admin"})
				h.add(domain.InvitationRevoked{WorkspaceID: ws, InvitationID: inv, UserID: user})
			case 2:
				h.accept(ws, inv, user, domain.RoleEditor)
				h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: user})
				h.join(ws, user, domain.RoleMonitor)
			case 3:
				h.accept(ws, inv, user, domain.RoleEditor)
				h.add(domain.RoleChanged{WorkspaceID: ws, UserID: user, ToRole: "Manager"})
				h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: user})
				h.add(domain.MemberReactivated{WorkspaceID: ws, UserID: user})
			case 4:
				h.accept(ws, inv, user, domain.RoleEditor)
				h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: user})
			}
		}
	}
	pgtest.CheckBatchings(t, pool, memberships.New(), h.events, 1)
}

func TestCreateTablesInFreshSchema(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h := &history{}
	ws, owner := uuid.New(), uuid.New()
	h.create(ws, owner, "Acme")
	pgtest.ApplyInFreshSchema(t, pool, "rebuild_1", memberships.New(), h.events)
	queries(t, pool, "rebuild_1", func(q *memberships.Queries) {
		role, status, _, found, err := q.Permissions(ctx, ws, owner)
		if err != nil || !found || role != domain.RoleAdmin || status != domain.StatusActive {
			t.Errorf("Permissions in rebuild_1: %s %s found %v err %v, want Admin active", role, status, found, err)
		}
	})
}

// TestPermissionsIsOneKeyLookup: the per-page-load query reads the primary
// key, whatever the table's size.
func TestPermissionsIsOneKeyLookup(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO memberships (user_id, workspace_id, role, status)
		SELECT gen_random_uuid(), gen_random_uuid(), 'AgentUser', 'active' FROM generate_series(1, 20000);
		ANALYZE memberships`); err != nil {
		t.Fatal(err)
	}
	var plan string
	if err := pool.QueryRow(ctx, "EXPLAIN (COSTS OFF) "+memberships.PermissionsSQL, uuid.New(), uuid.New()).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	if plan != "Index Scan using memberships_pkey on memberships" {
		t.Errorf("plan %q, want an index scan of memberships_pkey", plan)
	}
}

func TestProjectionIdentity(t *testing.T) {
	t.Parallel()
	p := memberships.New()
	pgtest.CheckIdentity(t, p, "memberships", []string{"memberships", "memberships_workspaces", "memberships_accounts"})
	if s := p.Schema(); s.Tables == "" || !strings.Contains(s.Indexes, "memberships_accounts_email_idx") {
		t.Errorf("Schema() = %+v, want the tables and the accounts' address index", s)
	}
}
