package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/domain"
)

func wantRoleUntil(t *testing.T, w *domain.Workspace, p person, until time.Time, before domain.Role) {
	t.Helper()
	m, ok := w.Member(p.id)
	if !ok {
		t.Fatalf("%s: not a member", p.email)
	}
	if !m.RoleUntil.Equal(until) || m.RoleBefore != before {
		t.Fatalf("%s: RoleUntil %v, RoleBefore %q; want %v, %q", p.email, m.RoleUntil, m.RoleBefore, until, before)
	}
}

func TestTemporaryRole(t *testing.T) {
	t.Parallel()
	friday := t0.Add(3 * day)
	editorAdminUntilFriday := evs(team(), roleChangedUntil(editor, domain.RoleEditor, domain.RoleAdmin, owner, friday))
	runSpecs(t, []spec{
		{
			name:  "a role with an end remembers the role it replaces",
			given: team(),
			when:  changeRoleUntil(owner, editor, domain.RoleAdmin, friday, t0),
			then:  evs(roleChangedUntil(editor, domain.RoleEditor, domain.RoleAdmin, owner, friday)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleAdmin, domain.StatusActive)
				wantRoleUntil(t, w, editor, friday, domain.RoleEditor)
				if next, ok := w.NextExpiry(); !ok || !next.Equal(friday) {
					t.Fatalf("NextExpiry: got %v %v, want %v", next, ok, friday)
				}
			},
		},
		{name: "an end now is refused", given: team(), when: changeRoleUntil(owner, editor, domain.RoleAdmin, t0, t0), wantErr: domain.CodeInvalidInput,
			checkErr: func(t *testing.T, err error) {
				var de *domain.Error
				if !errors.As(err, &de) || de.Field != "until" {
					t.Fatalf("got %v, want an error about until", err)
				}
			}},
		{name: "an end in the past is refused", given: team(), when: changeRoleUntil(owner, editor, domain.RoleAdmin, t0.Add(-time.Second), t0), wantErr: domain.CodeInvalidInput},
		{name: "only an Admin grants a temporary role", given: team(), when: changeRoleUntil(manager, editor, domain.RoleMonitor, friday, t0), wantErr: domain.CodeNotAllowed},
		{
			name:  "at the end the previous role comes back",
			given: editorAdminUntilFriday,
			when:  expireGrants(friday),
			then:  evs(grantExpired(editor, domain.RoleAdmin, domain.RoleEditor, friday)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusActive)
				wantRoleUntil(t, w, editor, time.Time{}, "")
				wantActiveAdmins(t, w, 1)
			},
		},
		{name: "before the end nothing happens", given: editorAdminUntilFriday, when: expireGrants(friday.Add(-time.Second))},
		{
			name:  "an ended grant ends once",
			given: evs(editorAdminUntilFriday, grantExpired(editor, domain.RoleAdmin, domain.RoleEditor, friday)),
			when:  expireGrants(friday.Add(day)),
		},
		{
			name:  "a later role change cancels the end",
			given: editorAdminUntilFriday,
			when:  changeRole(owner, editor, domain.RoleManager),
			then:  evs(roleChanged(editor, domain.RoleAdmin, domain.RoleManager, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantRoleUntil(t, w, editor, time.Time{}, "")
				w.ExpireRoleGrants(friday.Add(day))
				if p := w.Pending(); len(p) != 0 {
					t.Fatalf("after a later change, expiry recorded %v; want nothing", p)
				}
			},
		},
		{
			name:  "a later temporary change replaces the end and the role to come back",
			given: editorAdminUntilFriday,
			when:  changeRoleUntil(owner, editor, domain.RoleManager, friday.Add(day), t0),
			then:  evs(roleChangedUntil(editor, domain.RoleAdmin, domain.RoleManager, owner, friday.Add(day))),
			check: func(t *testing.T, w *domain.Workspace) {
				wantRoleUntil(t, w, editor, friday.Add(day), domain.RoleAdmin)
			},
		},
		{
			name:  "a removed member's grant ends with the membership",
			given: evs(editorAdminUntilFriday, removed(editor, domain.RoleAdmin)),
			when:  expireGrants(friday.Add(day)),
		},
		{
			name:  "an end that would leave no active Admin keeps the role and says why",
			given: evs(editorAdminUntilFriday, roleChanged(owner, domain.RoleAdmin, domain.RoleMonitor, editor)),
			when:  expireGrants(friday),
			then:  evs(grantKept(editor, domain.RoleAdmin, domain.RoleEditor, friday)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleAdmin, domain.StatusActive)
				wantRoleUntil(t, w, editor, time.Time{}, "")
				w.ExpireRoleGrants(friday.Add(day))
				if p := w.Pending(); len(p) != 0 {
					t.Fatalf("after a refusal, expiry recorded %v; want nothing", p)
				}
			},
		},
		{
			name: "two Admin grants ending together leave one Admin",
			given: evs(team(), joined(5, admin2, domain.RoleMonitor),
				roleChangedUntil(editor, domain.RoleEditor, domain.RoleAdmin, owner, friday),
				roleChangedUntil(admin2, domain.RoleMonitor, domain.RoleAdmin, owner, friday),
				roleChanged(owner, domain.RoleAdmin, domain.RoleEditor, owner)),
			when: expireGrants(friday),
			then: func() []domain.Event {
				// The earlier user id goes first; the other keeps the role.
				first, second := editor, admin2
				firstRole, secondRole := domain.RoleEditor, domain.RoleMonitor
				if admin2.id.String() < editor.id.String() {
					first, second, firstRole, secondRole = admin2, editor, domain.RoleMonitor, domain.RoleEditor
				}
				return evs(grantExpired(first, domain.RoleAdmin, firstRole, friday), grantKept(second, domain.RoleAdmin, secondRole, friday))
			}(),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 1) },
		},
		{
			name:  "a temporary demotion of an Admin brings the Admin back",
			given: evs(teamWithAdmin2(), roleChangedUntil(admin2, domain.RoleAdmin, domain.RoleMonitor, owner, friday)),
			when:  expireGrants(friday),
			then:  evs(grantExpired(admin2, domain.RoleMonitor, domain.RoleAdmin, friday)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 2) },
		},
		{
			name:  "a pending invitation's temporary role ends too",
			given: evs(team(), invited(6, nora, domain.RoleEditor), roleChangedUntil(nora, domain.RoleEditor, domain.RoleManager, owner, friday)),
			when:  expireGrants(friday),
			then:  evs(grantExpired(nora, domain.RoleManager, domain.RoleEditor, friday)),
		},
	})
}

// An old RoleChanged has no until: encoding one without an end must give the
// same bytes, so the audit's hashes and exports of old events do not move.
func TestRoleChangedWithoutEndKeepsItsBytes(t *testing.T) {
	t.Parallel()
	data, err := domain.EncodeEvent(roleChanged(editor, domain.RoleEditor, domain.RoleManager, owner))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "until") {
		t.Fatalf("RoleChanged without an end encodes as %s, want no until", data)
	}
	got, err := domain.DecodeEvent("RoleChanged", 1, data)
	if err != nil {
		t.Fatal(err)
	}
	if rc := got.(domain.RoleChanged); rc.Until != nil {
		t.Fatalf("decoded Until %v, want nil", rc.Until)
	}
}
