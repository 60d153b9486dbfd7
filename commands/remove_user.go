package commands

import (
	"context"

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

type RemoveUserHandler struct{ w writer }

func NewRemoveUserHandler(repo WorkspaceRepository, clock Clock, ids IDs) RemoveUserHandler {
	return RemoveUserHandler{newWriter(repo, clock, ids)}
}

func (h RemoveUserHandler) Handle(ctx context.Context, cmd RemoveUser) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.Remove(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
