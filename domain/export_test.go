package domain

import "github.com/google/uuid"

// CheckPermission exposes to the tests the check every decision starts
// with: actor must be an active member whose role holds perm.
func (w *Workspace) CheckPermission(actor uuid.UUID, perm Permission) error {
	_, err := w.authorize(actor, perm)
	return err
}

// Hash exposes to the tests the stored form of a link (UserInvited's and
// InvitationResent's TokenHash), which TestInvitationTokenHashIsStable pins.
func (t InvitationToken) Hash(email Email) string { return t.hash(email) }
