package domain

import (
	"strings"
	"unicode/utf8"
)

// Role is a member's role in one workspace. Higher roles include everything
// the lower ones can do.
type Role string

const (
	RoleAdmin     Role = "Admin"
	RoleManager   Role = "Manager"
	RoleEditor    Role = "Editor"
	RoleMonitor   Role = "Monitor"
	RoleAgentUser Role = "AgentUser"
)

// Roles lists every role, highest first.
var Roles = []Role{RoleAdmin, RoleManager, RoleEditor, RoleMonitor, RoleAgentUser}

// rank orders roles; an unknown role ranks zero, below every real one.
func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 5
	case RoleManager:
		return 4
	case RoleEditor:
		return 3
	case RoleMonitor:
		return 2
	case RoleAgentUser:
		return 1
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Includes reports whether r can do everything other can.
func (r Role) Includes(other Role) bool { return r.Valid() && r.rank() >= other.rank() }

// Above reports whether r ranks strictly higher than other.
func (r Role) Above(other Role) bool { return r.rank() > other.rank() }

// ParseRole accepts a role name in any letter case and returns its canonical
// form, so "admin" and "Admin" mean the same; anything else is invalid_role.
func ParseRole(s string) (Role, error) {
	t := strings.TrimSpace(s)
	for _, r := range Roles {
		if strings.EqualFold(t, string(r)) {
			return r, nil
		}
	}
	return "", fieldError("role", CodeInvalidRole, "unknown role %q: want one of Admin, Manager, Editor, Monitor, AgentUser", truncate(t, 40))
}

// Permission is a capability a role grants.
type Permission string

const (
	PermUseInbox         Permission = "inbox.use"
	PermReadWorkspace    Permission = "workspace.read"
	PermEditContent      Permission = "content.edit"
	PermInviteUsers      Permission = "users.invite"
	PermManageUsers      Permission = "users.manage"
	PermAdministerSystem Permission = "workspace.administer"
)

// minimumRole is the permission table of the product specification: each
// permission and the lowest role that holds it.
var minimumRole = []struct {
	perm Permission
	role Role
}{
	{PermUseInbox, RoleAgentUser},
	{PermReadWorkspace, RoleMonitor},
	{PermEditContent, RoleEditor},
	{PermInviteUsers, RoleManager},
	{PermManageUsers, RoleAdmin},
	{PermAdministerSystem, RoleAdmin},
}

// Can reports whether r holds p.
func (r Role) Can(p Permission) bool {
	for _, m := range minimumRole {
		if m.perm == p {
			return r.Includes(m.role)
		}
	}
	return false
}

// Permissions lists what r holds, in the table's order.
func (r Role) Permissions() []Permission {
	var out []Permission
	for _, m := range minimumRole {
		if r.Includes(m.role) {
			out = append(out, m.perm)
		}
	}
	return out
}

// truncate cuts s to at most n bytes, between characters, and marks the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
