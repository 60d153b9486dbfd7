package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/usersd/usersd/domain"
)

func TestRolesHighestFirst(t *testing.T) {
	t.Parallel()
	want := []domain.Role{domain.RoleAdmin, domain.RoleManager, domain.RoleEditor, domain.RoleMonitor, domain.RoleAgentUser}
	if !reflect.DeepEqual(domain.Roles, want) {
		t.Fatalf("Roles: got %v, want %v", domain.Roles, want)
	}
	for _, r := range domain.Roles {
		if !r.Valid() {
			t.Errorf("%s.Valid(): got false, want true", r)
		}
	}
}

// TestRoleOrder checks Includes and Above for every pair of roles: a role
// includes itself and every lower one, and is above only the lower ones.
func TestRoleOrder(t *testing.T) {
	t.Parallel()
	for i, r := range domain.Roles {
		for j, other := range domain.Roles {
			t.Run(string(r)+"/"+string(other), func(t *testing.T) {
				t.Parallel()
				if got, want := r.Includes(other), i <= j; got != want {
					t.Errorf("%s.Includes(%s): got %v, want %v", r, other, got, want)
				}
				if got, want := r.Above(other), i < j; got != want {
					t.Errorf("%s.Above(%s): got %v, want %v", r, other, got, want)
				}
			})
		}
	}
}

func TestUnknownRoleHoldsNothing(t *testing.T) {
	t.Parallel()
	for _, r := range []domain.Role{"", "Owner", "admin", "Guest"} {
		t.Run(string(r), func(t *testing.T) {
			t.Parallel()
			if r.Valid() {
				t.Errorf("Role(%q).Valid(): got true, want false", r)
			}
			for _, other := range domain.Roles {
				if r.Includes(other) {
					t.Errorf("Role(%q).Includes(%s): got true, want false", r, other)
				}
				if r.Above(other) {
					t.Errorf("Role(%q).Above(%s): got true, want false", r, other)
				}
				if !other.Above(r) {
					t.Errorf("%s.Above(%q): got false, want true (an unknown role ranks below every real one)", other, r)
				}
			}
			if p := r.Permissions(); len(p) != 0 {
				t.Errorf("Role(%q).Permissions(): got %v, want none", r, p)
			}
			if r.Can(domain.PermUseInbox) {
				t.Errorf("Role(%q).Can(%s): got true, want false", r, domain.PermUseInbox)
			}
		})
	}
}

// permissionTable is the table of product.md, row by row, with the columns
// Admin, Manager, Editor, Monitor, AgentUser.
var permissionTable = []struct {
	capability string
	perm       domain.Permission
	holders    [5]bool
}{
	{"use the Inbox", domain.PermUseInbox, [5]bool{true, true, true, true, true}},
	{"read the workspace", domain.PermReadWorkspace, [5]bool{true, true, true, true, false}},
	{"build/edit automations, models, knowledges", domain.PermEditContent, [5]bool{true, true, true, false, false}},
	{"invite users, resend or revoke invitations", domain.PermInviteUsers, [5]bool{true, true, false, false, false}},
	{"change roles, remove, suspend, reactivate users", domain.PermManageUsers, [5]bool{true, false, false, false, false}},
	{"licensing, workspace settings, server health", domain.PermAdministerSystem, [5]bool{true, false, false, false, false}},
}

func TestPermissionTable(t *testing.T) {
	t.Parallel()
	for _, row := range permissionTable {
		for i, r := range domain.Roles {
			t.Run(string(r)+"/"+string(row.perm), func(t *testing.T) {
				t.Parallel()
				if got, want := r.Can(row.perm), row.holders[i]; got != want {
					t.Errorf("%s.Can(%s) (%s): got %v, want %v", r, row.perm, row.capability, got, want)
				}
			})
		}
	}
}

func TestPermissionsInTableOrder(t *testing.T) {
	t.Parallel()
	for i, r := range domain.Roles {
		t.Run(string(r), func(t *testing.T) {
			t.Parallel()
			var want []domain.Permission
			for _, row := range permissionTable {
				if row.holders[i] {
					want = append(want, row.perm)
				}
			}
			if got := r.Permissions(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s.Permissions(): got %v, want %v", r, got, want)
			}
		})
	}
}

func TestUnknownPermissionIsRefused(t *testing.T) {
	t.Parallel()
	for _, r := range domain.Roles {
		if r.Can("billing.pay") {
			t.Errorf("%s.Can(billing.pay): got true, want false for a permission not in the table", r)
		}
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want domain.Role
		err  domain.Code
	}{
		{in: "Admin", want: domain.RoleAdmin},
		{in: "admin", want: domain.RoleAdmin},
		{in: "ADMIN", want: domain.RoleAdmin},
		{in: "Manager", want: domain.RoleManager},
		{in: "mAnAgEr", want: domain.RoleManager},
		{in: "editor", want: domain.RoleEditor},
		{in: "MONITOR", want: domain.RoleMonitor},
		{in: "agentuser", want: domain.RoleAgentUser},
		{in: "AgentUser", want: domain.RoleAgentUser},
		{in: "  Editor\t", want: domain.RoleEditor},
		{in: "", err: domain.CodeInvalidRole},
		{in: "Owner", err: domain.CodeInvalidRole},
		{in: "Admins", err: domain.CodeInvalidRole},
		{in: "Agent User", err: domain.CodeInvalidRole},
		{in: "Admin\x00", err: domain.CodeInvalidRole},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseRole(c.in)
			if code := domain.ErrorCode(err); code != c.err {
				t.Fatalf("ParseRole(%q): got error %v (code %q), want code %q", c.in, err, code, c.err)
			}
			if got != c.want {
				t.Fatalf("ParseRole(%q): got %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// TestErrorMessagesStayValidText checks that messages quoting what a person
// typed cut it between characters, so they stay valid UTF-8 in a response.
func TestErrorMessagesStayValidText(t *testing.T) {
	t.Parallel()
	_, err := domain.ParseRole("x" + strings.Repeat("é", 30))
	if err == nil || !utf8.ValidString(err.Error()) || !strings.Contains(err.Error(), `"x`+strings.Repeat("é", 19)+"…") {
		t.Fatalf("ParseRole(x and 30 × é): got error %q, want a valid UTF-8 message quoting x, 19 × é and an ellipsis", err)
	}
	_, err = domain.NormalizeEmail("jane@a" + strings.Repeat("ü", 40) + ".-com")
	if err == nil || !utf8.ValidString(err.Error()) {
		t.Fatalf("NormalizeEmail(long non-ASCII host): got error %q, want a valid UTF-8 message", err)
	}
}
