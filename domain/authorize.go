package domain

// Authorize is the one rule of who may act in a workspace: m is the actor's
// membership (nil when they have none), which must have joined (a pending
// invitation is no membership), not be suspended, and hold perm by its
// role. Someone who is not a member learns nothing about the workspace: the
// answer is that of a workspace that does not exist. The aggregate decides
// with it on its own state; the HTTP reads ask it with the memberships read
// model's row.
func Authorize(m *Member, perm Permission) error {
	switch {
	case m == nil || m.Status == StatusInvited:
		return ErrWorkspaceNotFound
	case m.Status == StatusSuspended:
		return newError(CodeMemberSuspended, "your access to this workspace is suspended")
	case !m.Role.Can(perm):
		return newError(CodeNotAllowed, "the %s role does not allow this", m.Role)
	}
	return nil
}
