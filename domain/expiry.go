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

// NextExpiry answers the earliest expiry among invitations not yet marked
// expired, so a scheduler knows when to look again.
func (w *Workspace) NextExpiry() (time.Time, bool) {
	var next time.Time
	found := false
	for _, userID := range w.invitations {
		inv := w.members[userID].Invitation
		if !inv.Expired && (!found || inv.ExpiresAt.Before(next)) {
			next, found = inv.ExpiresAt, true
		}
	}
	return next, found
}
