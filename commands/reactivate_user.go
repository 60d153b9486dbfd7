package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ReactivateUser gives a suspended member access again.
type ReactivateUser struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

type ReactivateUserHandler struct{ w writer }

func NewReactivateUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) ReactivateUserHandler {
	return ReactivateUserHandler{newWriter(repo, clock, ids)}
}

func (h ReactivateUserHandler) Handle(ctx context.Context, cmd ReactivateUser) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.Reactivate(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
