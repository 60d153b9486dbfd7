package domain_test

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// oneActiveOneSuspendedAdmin has the owner as its only active Admin and a
// second Admin who is suspended.
func oneActiveOneSuspendedAdmin() []domain.Event {
	return evs(teamWithAdmin2(), suspended(admin2, domain.RoleAdmin))
}

func TestChangeRole(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name:  "Admin promotes an Editor to Manager",
			given: team(),
			when:  changeRole(owner, editor, domain.RoleManager),
			then:  evs(roleChanged(editor, domain.RoleEditor, domain.RoleManager, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleManager, domain.StatusActive)
				wantActiveAdmins(t, w, 1)
			},
		},
		{
			name:  "Admin promotes a Monitor to Admin",
			given: team(),
			when:  changeRole(owner, monitor, domain.RoleAdmin),
			then:  evs(roleChanged(monitor, domain.RoleMonitor, domain.RoleAdmin, owner)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 2) },
		},
		{
			name:  "any role to any role: AgentUser to Manager",
			given: team(),
			when:  changeRole(owner, agent, domain.RoleManager),
			then:  evs(roleChanged(agent, domain.RoleAgentUser, domain.RoleManager, owner)),
		},
		{
			name:  "unchanged role records nothing",
			given: team(),
			when:  changeRole(owner, editor, domain.RoleEditor),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusActive)
			},
		},
		{
			name:  "last Admin keeping the Admin role records nothing",
			given: team(),
			when:  changeRole(owner, owner, domain.RoleAdmin),
		},
		{name: "last active Admin demotes themself", given: team(), when: changeRole(owner, owner, domain.RoleManager), wantErr: domain.CodeLastAdmin},
		{
			name:  "demoting one of two Admins",
			given: teamWithAdmin2(),
			when:  changeRole(owner, admin2, domain.RoleEditor),
			then:  evs(roleChanged(admin2, domain.RoleAdmin, domain.RoleEditor, owner)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 1) },
		},
		{
			name:  "an Admin demotes themself when another Admin is left",
			given: teamWithAdmin2(),
			when:  changeRole(owner, owner, domain.RoleMonitor),
			then:  evs(roleChanged(owner, domain.RoleAdmin, domain.RoleMonitor, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantActiveAdmins(t, w, 1)
				if err := w.ChangeRole(admin2.id, admin2.id, domain.RoleEditor); domain.ErrorCode(err) != domain.CodeLastAdmin {
					t.Fatalf("the remaining Admin demoting themself: got %v, want code %q", err, domain.CodeLastAdmin)
				}
			},
		},
		{
			name:    "a suspended Admin does not count: the active one cannot be demoted",
			given:   oneActiveOneSuspendedAdmin(),
			when:    changeRole(owner, owner, domain.RoleEditor),
			wantErr: domain.CodeLastAdmin,
		},
		{
			name:  "demoting a suspended Admin",
			given: oneActiveOneSuspendedAdmin(),
			when:  changeRole(owner, admin2, domain.RoleEditor),
			then:  evs(roleChanged(admin2, domain.RoleAdmin, domain.RoleEditor, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantActiveAdmins(t, w, 1)
				wantStatus(t, w, admin2, domain.RoleEditor, domain.StatusSuspended)
			},
		},
		{
			name:  "promoting a suspended member to Admin does not add an active Admin",
			given: evs(team(), suspended(editor, domain.RoleEditor)),
			when:  changeRole(owner, editor, domain.RoleAdmin),
			then:  evs(roleChanged(editor, domain.RoleEditor, domain.RoleAdmin, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantActiveAdmins(t, w, 1)
				if err := w.Reactivate(owner.id, editor.id); err != nil {
					t.Fatalf("Reactivate: %v", err)
				}
				w.Commit()
				wantActiveAdmins(t, w, 2)
			},
		},
		{
			name:  "changing the role of an invitation",
			given: evs(team(), invitedAt(20, nora, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-hour))),
			when:  changeRole(owner, nora, domain.RoleAdmin),
			then:  evs(roleChanged(nora, domain.RoleEditor, domain.RoleAdmin, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				m, _ := w.Member(nora.id)
				if m.Role != domain.RoleAdmin || m.Status != domain.StatusInvited || m.Invitation.GrantedBy != owner.id || m.Invitation.InvitedBy != manager.id {
					t.Fatalf("Member(nora): got %s %s, invitation %+v, want an invited Admin granted by the owner, invited by the Manager", m.Status, m.Role, m.Invitation)
				}
				wantActiveAdmins(t, w, 1)
			},
		},
		{name: "Manager cannot change roles", given: team(), when: changeRole(manager, editor, domain.RoleMonitor), wantErr: domain.CodeNotAllowed},
		{name: "Editor cannot change roles", given: team(), when: changeRole(editor, monitor, domain.RoleEditor), wantErr: domain.CodeNotAllowed},
		{name: "AgentUser cannot change roles", given: team(), when: changeRole(agent, agent, domain.RoleAdmin), wantErr: domain.CodeNotAllowed},
		{name: "non-member", given: team(), when: changeRole(outsider, editor, domain.RoleMonitor), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspended Admin", given: oneActiveOneSuspendedAdmin(), when: changeRole(admin2, editor, domain.RoleMonitor), wantErr: domain.CodeMemberSuspended},
		{name: "unknown role", given: team(), when: changeRole(owner, editor, "Owner"), wantErr: domain.CodeInvalidRole},
		{name: "lower-case role is not parsed here", given: team(), when: changeRole(owner, editor, "manager"), wantErr: domain.CodeInvalidRole},
		{name: "empty role", given: team(), when: changeRole(owner, editor, ""), wantErr: domain.CodeInvalidRole},
		{name: "unknown person", given: team(), when: changeRole(owner, nora, domain.RoleEditor), wantErr: domain.CodeUserNotFound},
		{name: "removed person", given: evs(team(), removed(editor, domain.RoleEditor)), when: changeRole(owner, editor, domain.RoleMonitor), wantErr: domain.CodeUserNotFound},
	})
}

func TestRemove(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name:  "Admin removes an Editor",
			given: team(),
			when:  remove(owner, editor),
			then:  evs(removed(editor, domain.RoleEditor)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantGone(t, w, editor)
				if w.MemberCount() != 4 {
					t.Fatalf("MemberCount: got %d, want 4", w.MemberCount())
				}
				if _, err := w.Login(editor.id, t0); domain.ErrorCode(err) != domain.CodeUserNotFound {
					t.Fatalf("Login of a removed member: got %v, want code %q", err, domain.CodeUserNotFound)
				}
			},
		},
		{
			name:  "Admin removes a suspended member",
			given: evs(team(), suspended(monitor, domain.RoleMonitor)),
			when:  remove(owner, monitor),
			then:  evs(removed(monitor, domain.RoleMonitor)),
			check: func(t *testing.T, w *domain.Workspace) { wantGone(t, w, monitor) },
		},
		{
			name:  "removing one of two active Admins",
			given: teamWithAdmin2(),
			when:  remove(admin2, owner),
			then:  evs(removed(owner, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantActiveAdmins(t, w, 1)
				wantGone(t, w, owner)
			},
		},
		{name: "last active Admin removes themself", given: team(), when: remove(owner, owner), wantErr: domain.CodeLastAdmin},
		{
			name:    "a suspended Admin does not count: the active one cannot be removed",
			given:   oneActiveOneSuspendedAdmin(),
			when:    remove(owner, owner),
			wantErr: domain.CodeLastAdmin,
		},
		{
			name:  "removing the suspended Admin",
			given: oneActiveOneSuspendedAdmin(),
			when:  remove(owner, admin2),
			then:  evs(removed(admin2, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 1) },
		},
		{name: "Manager cannot remove a member", given: team(), when: remove(manager, editor), wantErr: domain.CodeNotAllowed},
		{name: "Editor cannot remove a member", given: team(), when: remove(editor, monitor), wantErr: domain.CodeNotAllowed},
		{name: "non-member", given: team(), when: remove(outsider, editor), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspended Admin", given: oneActiveOneSuspendedAdmin(), when: remove(admin2, editor), wantErr: domain.CodeMemberSuspended},
		{name: "unknown person", given: team(), when: remove(owner, nora), wantErr: domain.CodeUserNotFound},
		{name: "removing twice", given: evs(team(), removed(editor, domain.RoleEditor)), when: remove(owner, editor), wantErr: domain.CodeUserNotFound},
	})
}

func TestSuspendAndReactivate(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name:  "Admin suspends an Editor",
			given: team(),
			when:  suspend(owner, editor),
			then:  evs(suspended(editor, domain.RoleEditor)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusSuspended)
				if err := w.CheckPermission(editor.id, domain.PermUseInbox); domain.ErrorCode(err) != domain.CodeMemberSuspended {
					t.Fatalf("CheckPermission(suspended, inbox): got %v, want code %q", err, domain.CodeMemberSuspended)
				}
			},
		},
		{name: "suspending a suspended member records nothing", given: evs(team(), suspended(editor, domain.RoleEditor)), when: suspend(owner, editor)},
		{
			name:  "suspending one of two active Admins",
			given: teamWithAdmin2(),
			when:  suspend(owner, admin2),
			then:  evs(suspended(admin2, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 1) },
		},
		{name: "suspending the last active Admin", given: team(), when: suspend(owner, owner), wantErr: domain.CodeLastAdmin},
		{
			name:    "a suspended Admin does not count: the active one cannot be suspended",
			given:   oneActiveOneSuspendedAdmin(),
			when:    suspend(owner, owner),
			wantErr: domain.CodeLastAdmin,
		},
		{name: "suspending an invited person", given: evs(team(), invited(20, nora, domain.RoleEditor)), when: suspend(owner, nora), wantErr: domain.CodeNotActive},
		{name: "Manager cannot suspend", given: team(), when: suspend(manager, editor), wantErr: domain.CodeNotAllowed},
		{name: "Monitor cannot suspend", given: team(), when: suspend(monitor, agent), wantErr: domain.CodeNotAllowed},
		{name: "non-member cannot suspend", given: team(), when: suspend(outsider, editor), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspending an unknown person", given: team(), when: suspend(owner, nora), wantErr: domain.CodeUserNotFound},
		{
			name:  "Admin reactivates",
			given: evs(team(), suspended(editor, domain.RoleEditor)),
			when:  reactivate(owner, editor),
			then:  evs(reactivated(editor, domain.RoleEditor)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusActive)
				if _, err := w.Login(editor.id, t0); err != nil {
					t.Fatalf("Login after reactivation: got %v, want success", err)
				}
			},
		},
		{
			name:  "reactivating a suspended Admin counts them again",
			given: oneActiveOneSuspendedAdmin(),
			when:  reactivate(owner, admin2),
			then:  evs(reactivated(admin2, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 2) },
		},
		{name: "reactivating an active member records nothing", given: team(), when: reactivate(owner, editor)},
		{name: "reactivating an invited person", given: evs(team(), invited(20, nora, domain.RoleEditor)), when: reactivate(owner, nora), wantErr: domain.CodeNotActive},
		{name: "Manager cannot reactivate", given: evs(team(), suspended(editor, domain.RoleEditor)), when: reactivate(manager, editor), wantErr: domain.CodeNotAllowed},
		{name: "suspended Admin cannot reactivate themself", given: oneActiveOneSuspendedAdmin(), when: reactivate(admin2, admin2), wantErr: domain.CodeMemberSuspended},
		{name: "reactivating an unknown person", given: team(), when: reactivate(owner, nora), wantErr: domain.CodeUserNotFound},
	})
}

func TestUpdateSettings(t *testing.T) {
	t.Parallel()
	update := func(actor person, may bool) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error {
			return w.UpdateSettings(actor.id, domain.Settings{ManagersMayGrantAdmin: may})
		}
	}
	wantSetting := func(want bool) func(*testing.T, *domain.Workspace) {
		return func(t *testing.T, w *domain.Workspace) {
			if got := w.Settings().ManagersMayGrantAdmin; got != want {
				t.Fatalf("ManagersMayGrantAdmin: got %v, want %v", got, want)
			}
		}
	}
	runSpecs(t, []spec{
		{name: "Admin turns it off", given: team(), when: update(owner, false), then: evs(settingsChanged(false)), check: wantSetting(false)},
		{name: "Admin turns it back on", given: evs(team(), settingsChanged(false)), when: update(owner, true), then: evs(settingsChanged(true)), check: wantSetting(true)},
		{name: "unchanged default records nothing", given: team(), when: update(owner, true), check: wantSetting(true)},
		{name: "unchanged off records nothing", given: evs(team(), settingsChanged(false)), when: update(owner, false), check: wantSetting(false)},
		{name: "Manager cannot", given: team(), when: update(manager, false), wantErr: domain.CodeNotAllowed},
		{name: "Editor cannot", given: team(), when: update(editor, false), wantErr: domain.CodeNotAllowed},
		{name: "non-member cannot", given: team(), when: update(outsider, false), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspended Admin cannot", given: oneActiveOneSuspendedAdmin(), when: update(admin2, false), wantErr: domain.CodeMemberSuspended},
		{name: "workspace does not exist", when: update(owner, false), wantErr: domain.CodeWorkspaceNotFound},
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	given := evs(team(), invited(20, nora, domain.RoleEditor), suspended(monitor, domain.RoleMonitor))
	cases := []struct {
		name  string
		given []domain.Event
		who   person
		want  domain.Code
	}{
		{"active Admin", given, owner, ""},
		{"active AgentUser", given, agent, ""},
		{"suspended", given, monitor, domain.CodeMemberSuspended},
		{"invited", given, nora, domain.CodeUserNotFound},
		{"unknown", given, outsider, domain.CodeUserNotFound},
		{"workspace does not exist", nil, owner, domain.CodeUserNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := replayed(c.given)
			at := t0.Add(5 * hour)
			got, err := w.Login(c.who.id, at)
			if code := domain.ErrorCode(err); code != c.want || (err == nil) != (c.want == "") {
				t.Fatalf("Login(%s): got error %v (code %q), want code %q", c.who.email, err, code, c.want)
			}
			want := domain.UserLoggedIn{}
			if c.want == "" {
				want = domain.UserLoggedIn{WorkspaceID: wsID, UserID: c.who.id, LoggedInAt: at}
			}
			if got != want {
				t.Fatalf("Login(%s): got %+v, want %+v", c.who.email, got, want)
			}
			if len(w.Pending()) != 0 {
				t.Fatalf("Login recorded %d events on the workspace, want none (logins have their own stream)", len(w.Pending()))
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	w := replayed(evs(team(), invited(20, nora, domain.RoleAdmin), suspended(monitor, domain.RoleMonitor)))
	cases := []struct {
		who  person
		perm domain.Permission
		want domain.Code
	}{
		{owner, domain.PermAdministerSystem, ""},
		{manager, domain.PermInviteUsers, ""},
		{manager, domain.PermManageUsers, domain.CodeNotAllowed},
		{editor, domain.PermEditContent, ""},
		{editor, domain.PermInviteUsers, domain.CodeNotAllowed},
		{agent, domain.PermUseInbox, ""},
		{agent, domain.PermReadWorkspace, domain.CodeNotAllowed},
		{monitor, domain.PermUseInbox, domain.CodeMemberSuspended},
		{nora, domain.PermUseInbox, domain.CodeWorkspaceNotFound},
		{outsider, domain.PermUseInbox, domain.CodeWorkspaceNotFound},
	}
	for _, c := range cases {
		t.Run(string(c.who.email)+"/"+string(c.perm), func(t *testing.T) {
			t.Parallel()
			err := w.CheckPermission(c.who.id, c.perm)
			if code := domain.ErrorCode(err); code != c.want || (err == nil) != (c.want == "") {
				t.Fatalf("CheckPermission(%s, %s): got %v (code %q), want code %q", c.who.email, c.perm, err, code, c.want)
			}
		})
	}
}
