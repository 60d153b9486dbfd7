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
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	m, err := w.target(userID)
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
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	if !role.Valid() {
		return fieldError("role", CodeInvalidRole, "unknown role %q", role)
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
	w.record(RoleChanged{
		WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email),
		FromRole: string(m.Role), ToRole: string(role), ChangedBy: actor,
	})
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
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return nil, err
	}
	m, err := w.target(userID)
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
