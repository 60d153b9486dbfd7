package domain

import (
	"time"

	"github.com/google/uuid"
)

// apply is the one place where the workspace's state changes.
func (w *Workspace) apply(e Event) {
	switch e := e.(type) {
	case WorkspaceCreated:
		w.exists, w.name = true, e.Name
		w.addMember(&Member{UserID: e.OwnerUserID, Email: Email(e.OwnerEmail), Name: e.OwnerName, Role: RoleAdmin, Status: StatusActive})
	case UserInvited:
		if old, ok := w.members[e.UserID]; ok && old.Status == StatusInvited {
			// Invited anew after expiry: the old link dies with its invitation.
			w.closeInvitation(old, ErrInvitationRevoked)
		}
		w.addMember(&Member{
			UserID: e.UserID, Email: Email(e.Email), Role: Role(e.Role), Status: StatusInvited,
			Invitation: &Invitation{
				ID: e.InvitationID, InvitedBy: e.InvitedBy, InviterRole: Role(e.InviterRole),
				GrantedBy: e.InvitedBy, InvitedAt: e.InvitedAt, ExpiresAt: e.ExpiresAt,
				Attempt: FirstAttempt, tokenHash: e.TokenHash,
			},
		})
		w.invitations[e.InvitationID] = e.UserID
		w.invites.add(e.InvitedBy, e.InvitedAt)
	case InvitationResent:
		if m := w.members[e.UserID]; m != nil && m.Invitation != nil {
			inv := m.Invitation
			inv.oldHashes = append(inv.oldHashes, inv.tokenHash)
			inv.tokenHash, inv.ExpiresAt, inv.Attempt, inv.Expired = e.TokenHash, e.ExpiresAt, e.Attempt, false
			inv.outcomeRecorded = false
		}
		w.invites.add(e.ResentBy, e.ResentAt)
	case InvitationRevoked:
		if m := w.members[e.UserID]; m != nil && m.Invitation != nil {
			w.closeInvitation(m, ErrInvitationRevoked)
			w.removeMember(m)
		}
	case InvitationExpired:
		if m := w.members[e.UserID]; m != nil && m.Invitation != nil {
			m.Invitation.Expired = true
		}
	case InvitationAccepted:
		if m := w.members[e.UserID]; m != nil && m.Invitation != nil {
			w.closeInvitation(m, ErrInvitationUsed)
			m.Name, m.Role, m.Status, m.Invitation = e.Name, Role(e.Role), StatusActive, nil
			w.countAdmin(m, +1)
		}
	case RoleChanged:
		if m := w.members[e.UserID]; m != nil {
			w.countAdmin(m, -1)
			m.Role = Role(e.ToRole)
			w.countAdmin(m, +1)
			if m.Invitation != nil {
				m.Invitation.GrantedBy = e.ChangedBy
			}
			// A later change replaces any pending end, or cancels it.
			m.RoleUntil, m.RoleBefore = time.Time{}, ""
			if e.Until != nil {
				m.RoleUntil, m.RoleBefore = *e.Until, Role(e.FromRole)
			}
		}
	case RoleGrantExpired:
		if m := w.members[e.UserID]; m != nil {
			w.countAdmin(m, -1)
			m.Role = Role(e.ToRole)
			w.countAdmin(m, +1)
			m.RoleUntil, m.RoleBefore = time.Time{}, ""
		}
	case RoleGrantExpiryRefused:
		if m := w.members[e.UserID]; m != nil {
			m.RoleUntil, m.RoleBefore = time.Time{}, ""
		}
	case MemberRemoved:
		if m := w.members[e.UserID]; m != nil {
			w.removeMember(m)
		}
	case MemberSuspended:
		if m := w.members[e.UserID]; m != nil {
			w.countAdmin(m, -1)
			m.Status = StatusSuspended
		}
	case MemberReactivated:
		if m := w.members[e.UserID]; m != nil {
			m.Status = StatusActive
			w.countAdmin(m, +1)
		}
	case WorkspaceSettingsChanged:
		w.settings.ManagersMayGrantAdmin = e.ManagersMayGrantAdmin
	case InvitationEmailSent:
		w.noteOutcome(e.UserID, e.InvitationID, e.Attempt)
	case InvitationEmailFailed:
		w.noteOutcome(e.UserID, e.InvitationID, e.Attempt)
	case WebhookSubscribed:
		w.webhooks[e.WebhookID] = Webhook{ID: e.WebhookID, URL: e.URL, Events: e.Events}
	case WebhookRemoved:
		delete(w.webhooks, e.WebhookID)
	case AccessReviewStarted, AccessReviewItemDecided, AccessReviewCompleted:
		w.applyReview(e)
	case UserLoggedIn, AccountRegistered, AccountDeleted, AuditDivergenceAccepted, WebhookReplayRequested:
		// Logins and the audit's records change nothing a decision
		// depends on.
	}
}

// noteOutcome remembers that an attempt's delivery outcome is recorded, so
// that the mailer reporting it again (after a crash, say) records nothing.
func (w *Workspace) noteOutcome(userID, invID uuid.UUID, attempt int) {
	if m := w.members[userID]; m != nil && m.Invitation != nil && m.Invitation.ID == invID && m.Invitation.Attempt == attempt {
		m.Invitation.outcomeRecorded = true
	}
}

// addMember indexes m by address too, unless its address was erased (an
// erased person's events read with empty personal values): erased people
// share that "", and are never looked up by address.
func (w *Workspace) addMember(m *Member) {
	w.members[m.UserID] = m
	if m.Email != "" {
		w.byEmail[emailKey(m.Email)] = m.UserID
	}
	w.countAdmin(m, +1)
}

func (w *Workspace) removeMember(m *Member) {
	w.countAdmin(m, -1)
	delete(w.members, m.UserID)
	if k := emailKey(m.Email); w.byEmail[k] == m.UserID {
		delete(w.byEmail, k)
	}
}

// countAdmin keeps the number of active Admins, which guards the last one.
func (w *Workspace) countAdmin(m *Member, delta int) {
	if m.Status == StatusActive && m.Role == RoleAdmin {
		w.activeAdmins += delta
	}
}

func (w *Workspace) closeInvitation(m *Member, why *Error) {
	inv := m.Invitation
	w.closed[inv.ID] = closedInvitation{err: why, email: m.Email, tokenHash: inv.tokenHash}
	delete(w.invitations, inv.ID)
}
