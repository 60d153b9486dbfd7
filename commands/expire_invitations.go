package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ExpireInvitations marks the workspace's invitations whose time is up as
// expired, and ends its temporary roles whose time is up, in one append.
// The expiry scheduler sends it; the system acts.
type ExpireInvitations struct {
	WorkspaceID uuid.UUID
	Meta        Meta
}

// ExpireInvitationsResult says how many invitations expired and how many
// temporary roles ended (or were kept: RoleGrantExpiryRefused).
type ExpireInvitationsResult struct {
	Expired    int
	RoleGrants int
	Position   domain.Position
}

type ExpireInvitationsHandler struct{ w writer }

func NewExpireInvitationsHandler(repo WorkspaceRepository, clock Clock, ids IDs) ExpireInvitationsHandler {
	return ExpireInvitationsHandler{newWriter(repo, clock, ids)}
}

func (h ExpireInvitationsHandler) Handle(ctx context.Context, cmd ExpireInvitations) (ExpireInvitationsResult, error) {
	now := h.w.clock.Now()
	var n, g int
	pos, err := h.w.updateAs(ctx, cmd.WorkspaceID, system(cmd.Meta), func(w *domain.Workspace) error {
		n = w.ExpireInvitations(now)
		g = w.ExpireRoleGrants(now)
		return nil
	})
	if err != nil {
		return ExpireInvitationsResult{}, err
	}
	return ExpireInvitationsResult{Expired: n, RoleGrants: g, Position: pos}, nil
}
