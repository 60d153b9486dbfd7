package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ExpireInvitations marks the workspace's invitations whose time is up as
// expired. The expiry scheduler sends it.
type ExpireInvitations struct {
	WorkspaceID uuid.UUID
	Meta        Meta
}

type ExpireInvitationsHandler struct{ d Deps }

func NewExpireInvitationsHandler(d Deps) ExpireInvitationsHandler {
	d.check()
	return ExpireInvitationsHandler{d}
}

// Handle answers how many invitations expired and the position reached.
func (h ExpireInvitationsHandler) Handle(ctx context.Context, cmd ExpireInvitations) (int, domain.Position, error) {
	cmd.Meta.Actor = domain.Actor{System: true}
	now := h.d.Clock.Now()
	var n int
	pos, err := h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		n = w.ExpireInvitations(now)
		return nil
	})
	return n, pos, err
}
