package domain

import (
	"sort"
	"time"
)

// ExpireInvitations records the expiry of every pending invitation whose
// time is up and that is not marked expired yet, oldest first.
func (w *Workspace) ExpireInvitations(now time.Time) int {
	var due []*Member
	for _, userID := range w.invitations {
		m := w.members[userID]
		if !m.Invitation.Expired && !now.Before(m.Invitation.ExpiresAt) {
			due = append(due, m)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		a, b := due[i].Invitation, due[j].Invitation
		if !a.ExpiresAt.Equal(b.ExpiresAt) {
			return a.ExpiresAt.Before(b.ExpiresAt)
		}
		return a.ID.String() < b.ID.String()
	})
	for _, m := range due {
		w.record(InvitationExpired{
			WorkspaceID: w.id, InvitationID: m.Invitation.ID, UserID: m.UserID,
			Email: string(m.Email), ExpiredAt: now,
		})
	}
	return len(due)
}

// ExpireRoleGrants ends every temporary role whose time is up, earliest
// first: the role held before comes back (RoleGrantExpired), unless that
// would leave no active Admin, in which case the member keeps the role for
// good and the refusal is recorded (RoleGrantExpiryRefused). Either way the
// end is no longer pending, so a second run records nothing. Each decision
// sees the ones before it: of two Admins whose grants end together, with no
// other Admin, the first goes back and the second stays.
func (w *Workspace) ExpireRoleGrants(now time.Time) int {
	var due []*Member
	for _, m := range w.members {
		if !m.RoleUntil.IsZero() && !now.Before(m.RoleUntil) {
			due = append(due, m)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		a, b := due[i], due[j]
		if !a.RoleUntil.Equal(b.RoleUntil) {
			return a.RoleUntil.Before(b.RoleUntil)
		}
		return a.UserID.String() < b.UserID.String()
	})
	admins := w.activeAdmins
	for _, m := range due {
		leavesAdmin := m.Status == StatusActive && m.Role == RoleAdmin && m.RoleBefore != RoleAdmin
		if leavesAdmin && admins <= 1 {
			w.record(RoleGrantExpiryRefused{
				WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email),
				Role: string(m.Role), PreviousRole: string(m.RoleBefore), Until: m.RoleUntil,
				Reason: string(CodeLastAdmin),
			})
			continue
		}
		if leavesAdmin {
			admins--
		} else if m.Status == StatusActive && m.Role != RoleAdmin && m.RoleBefore == RoleAdmin {
			admins++
		}
		w.record(RoleGrantExpired{
			WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email),
			FromRole: string(m.Role), ToRole: string(m.RoleBefore), Until: m.RoleUntil,
		})
	}
	return len(due)
}

// NextExpiry answers the earliest expiry among invitations not yet marked
// expired and temporary roles, so a scheduler knows when to look again.
func (w *Workspace) NextExpiry() (time.Time, bool) {
	var next time.Time
	found := false
	for _, userID := range w.invitations {
		inv := w.members[userID].Invitation
		if !inv.Expired && (!found || inv.ExpiresAt.Before(next)) {
			next, found = inv.ExpiresAt, true
		}
	}
	for _, m := range w.members {
		if !m.RoleUntil.IsZero() && (!found || m.RoleUntil.Before(next)) {
			next, found = m.RoleUntil, true
		}
	}
	return next, found
}
