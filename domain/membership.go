package domain

import (
	"time"

	"github.com/google/uuid"
)

// Remove revokes a member's access to this workspace, or withdraws a
// pending invitation (which a Manager may do too).
func (w *Workspace) Remove(actor, userID uuid.UUID) error {
	if m, ok := w.members[userID]; ok && m.Status == StatusInvited {
		return w.RevokeInvitation(actor, userID)
	}
	m, err := authorizedFind(w, actor, PermManageUsers, w.target, userID)
	if err != nil {
		return err
	}
	if w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	w.record(MemberRemoved{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// ChangeRole gives a member, or a pending invitation, another role. The
// same role again changes nothing.
func (w *Workspace) ChangeRole(actor, userID uuid.UUID, role Role) error {
	return w.ChangeRoleUntil(actor, userID, role, time.Time{}, time.Time{})
}

// ChangeRoleUntil is ChangeRole with an end: unless until is zero, the role
// held now comes back at until (ExpireRoleGrants), which must be after now.
// Any role change replaces or cancels a pending end; the same role again
// changes nothing, its end included.
func (w *Workspace) ChangeRoleUntil(actor, userID uuid.UUID, role Role, until, now time.Time) error {
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	if !role.Valid() {
		return fieldError("role", CodeInvalidRole, "unknown role %q", role)
	}
	if !until.IsZero() && !until.After(now) {
		return fieldError("until", CodeInvalidInput, "until must be in the future")
	}
	m, err := w.target(userID)
	if err != nil {
		return err
	}
	if m.Role == role {
		return nil
	}
	if role != RoleAdmin && w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	e := RoleChanged{
		WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email),
		FromRole: string(m.Role), ToRole: string(role), ChangedBy: actor,
	}
	if !until.IsZero() {
		u := until.UTC()
		e.Until = &u
	}
	w.record(e)
	return nil
}

// Suspend blocks an active member's access and keeps the membership.
// Suspending a suspended member changes nothing.
func (w *Workspace) Suspend(actor, userID uuid.UUID) error {
	m, err := w.manageMember(actor, userID)
	if err != nil || m.Status == StatusSuspended {
		return err
	}
	if w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	w.record(MemberSuspended{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// Reactivate gives a suspended member access again. Reactivating an active
// member changes nothing.
func (w *Workspace) Reactivate(actor, userID uuid.UUID) error {
	m, err := w.manageMember(actor, userID)
	if err != nil || m.Status == StatusActive {
		return err
	}
	w.record(MemberReactivated{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// manageMember finds the target of suspend or reactivate: an Admin acting
// on someone who has joined.
func (w *Workspace) manageMember(actor, userID uuid.UUID) (*Member, error) {
	m, err := authorizedFind(w, actor, PermManageUsers, w.target, userID)
	if err != nil {
		return nil, err
	}
	if m.Status == StatusInvited {
		return nil, newError(CodeNotActive, "this person has not accepted the invitation yet; revoke it instead")
	}
	return m, nil
}

// Login checks that a member may log in and answers the event to record on
// the logins stream (not this workspace's stream, so that frequent logins
// never contend with membership changes).
func (w *Workspace) Login(userID uuid.UUID, at time.Time) (UserLoggedIn, error) {
	m, ok := w.members[userID]
	if !w.exists || !ok || m.Status == StatusInvited {
		return UserLoggedIn{}, ErrUserNotFound
	}
	if m.Status == StatusSuspended {
		return UserLoggedIn{}, newError(CodeMemberSuspended, "this member's access is suspended")
	}
	return UserLoggedIn{WorkspaceID: w.id, UserID: userID, LoggedInAt: at}, nil
}

// RemoveForDeletion takes a person whose account is being deleted out of
// this workspace: a member is removed, a pending invitation revoked, both
// with ReasonAccountDeleted. No member acts (the platform does), so no
// permission applies; the last-Admin rule does, as for any removal. Someone
// who is not here records nothing, which makes a repeated deletion a no-op.
func (w *Workspace) RemoveForDeletion(userID uuid.UUID) error {
	if err := w.CheckRemovalForDeletion(userID); err != nil {
		return err
	}
	m, ok := w.members[userID]
	if !w.exists || !ok {
		return nil
	}
	if m.Status == StatusInvited {
		w.record(InvitationRevoked{
			WorkspaceID: w.id, InvitationID: m.Invitation.ID, UserID: m.UserID,
			Email: string(m.Email), Role: string(m.Role), Reason: ReasonAccountDeleted,
		})
		return nil
	}
	w.record(MemberRemoved{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role), Reason: ReasonAccountDeleted})
	return nil
}

// CheckRemovalForDeletion answers the error RemoveForDeletion would answer,
// recording nothing: a deletion checks every workspace before it changes
// any, so that a refusal leaves the person everywhere as they were.
func (w *Workspace) CheckRemovalForDeletion(userID uuid.UUID) error {
	if m, ok := w.members[userID]; w.exists && ok && w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "this person is the workspace's last active Admin; make someone else Admin first")
	}
	return nil
}
