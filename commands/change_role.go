package commands

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ChangeRole gives a member, or a pending invitation, another role. It takes
// effect on the member's next page load; sessions are not killed.
type ChangeRole struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Role        string
	// Until, unless zero, ends the role: the one held now comes back then.
	Until time.Time
	Meta  Meta
}

type ChangeRoleHandler struct{ w writer }

func NewChangeRoleHandler(repo WorkspaceRepository, clock Clock, ids IDs) ChangeRoleHandler {
	return ChangeRoleHandler{newWriter(repo, clock, ids)}
}

func (h ChangeRoleHandler) Handle(ctx context.Context, cmd ChangeRole) (domain.Position, error) {
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return domain.Position{}, err
	}
	now := h.w.clock.Now()
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.ChangeRoleUntil(cmd.Meta.Actor.UserID, cmd.UserID, role, cmd.Until, now)
	})
}
