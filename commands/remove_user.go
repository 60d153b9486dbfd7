package commands

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// RemoveUser revokes a member's access to this workspace only (the account
// and other workspaces stay), or withdraws a pending invitation (its link
// dies).
type RemoveUser struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

func (c RemoveUser) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type RemoveUserHandler = workspaceHandler[RemoveUser, domain.Position]

func NewRemoveUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) RemoveUserHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd RemoveUser) error {
		return w.Remove(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
