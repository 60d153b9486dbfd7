package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// SuspendUser blocks a member's access and keeps the membership.
type SuspendUser struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

type SuspendUserHandler struct{ w writer }

func NewSuspendUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) SuspendUserHandler {
	return SuspendUserHandler{newWriter(repo, clock, ids)}
}

func (h SuspendUserHandler) Handle(ctx context.Context, cmd SuspendUser) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.Suspend(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
