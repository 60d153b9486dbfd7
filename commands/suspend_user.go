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

type SuspendUserHandler struct{ d Deps }

func NewSuspendUserHandler(d Deps) SuspendUserHandler {
	d.check()
	return SuspendUserHandler{d}
}

func (h SuspendUserHandler) Handle(ctx context.Context, cmd SuspendUser) (domain.Position, error) {
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		return w.Suspend(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
