package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// RevokeInvitation withdraws a pending invitation; its link dies.
type RevokeInvitation struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

type RevokeInvitationHandler struct{ d Deps }

func NewRevokeInvitationHandler(d Deps) RevokeInvitationHandler {
	d.check()
	return RevokeInvitationHandler{d}
}

func (h RevokeInvitationHandler) Handle(ctx context.Context, cmd RevokeInvitation) (domain.Position, error) {
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		return w.RevokeInvitation(cmd.Meta.Actor.UserID, cmd.UserID)
	})
}
