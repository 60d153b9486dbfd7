package commands

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// SuspendUser blocks a member's access and keeps the membership.
type SuspendUser struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

func (c SuspendUser) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type SuspendUserHandler = workspaceHandler[SuspendUser, domain.Position]

func NewSuspendUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) SuspendUserHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd SuspendUser) error {
		return w.Suspend(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
