package commands

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ReactivateUser gives a suspended member access again.
type ReactivateUser struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

func (c ReactivateUser) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type ReactivateUserHandler = workspaceHandler[ReactivateUser, domain.Position]

func NewReactivateUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) ReactivateUserHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd ReactivateUser) error {
		return w.Reactivate(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
