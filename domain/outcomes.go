package domain

import "github.com/google/uuid"

// RecordEmailSent records that the e-mail of an invitation's attempt went
// out. An outcome for an invitation that is gone or for an older attempt
// records nothing: a newer link has replaced it. Nor does a second outcome
// for the same attempt: the first one stands.
func (w *Workspace) RecordEmailSent(invID uuid.UUID, attempt int) {
	if m := w.liveInvitation(invID, attempt); m != nil {
		w.record(InvitationEmailSent{WorkspaceID: w.id, InvitationID: invID, UserID: m.UserID, Attempt: attempt})
	}
}

// RecordEmailFailed records that an attempt's e-mail could not be delivered.
func (w *Workspace) RecordEmailFailed(invID uuid.UUID, attempt int, reason string) {
	if m := w.liveInvitation(invID, attempt); m != nil {
		w.record(InvitationEmailFailed{
			WorkspaceID: w.id, InvitationID: invID, UserID: m.UserID, Attempt: attempt,
			Reason: truncate(reason, 500),
		})
	}
}

func (w *Workspace) liveInvitation(invID uuid.UUID, attempt int) *Member {
	userID, ok := w.invitations[invID]
	if !ok {
		return nil
	}
	m := w.members[userID]
	if m.Invitation.Attempt != attempt || m.Invitation.outcomeRecorded {
		return nil
	}
	return m
}
