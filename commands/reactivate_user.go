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

type ReactivateUserHandler struct{ d Deps }

func NewReactivateUserHandler(d Deps) ReactivateUserHandler {
	d.check()
	return ReactivateUserHandler{d}
}

func (h ReactivateUserHandler) Handle(ctx context.Context, cmd ReactivateUser) (domain.Position, error) {
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		return w.Reactivate(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
