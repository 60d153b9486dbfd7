package commands

import (
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

func (c ChangeRole) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type ChangeRoleHandler = workspaceHandler[ChangeRole, domain.Position]

func NewChangeRoleHandler(repo WorkspaceRepository, clock Clock, ids IDs) ChangeRoleHandler {
	return newWorkspaceHandler(repo, clock, ids, func(cmd ChangeRole) (decision[domain.Position], error) {
		role, err := domain.ParseRole(cmd.Role)
		if err != nil {
			return decision[domain.Position]{}, err
		}
		now := clock.Now()
		return atPosition(func(w *domain.Workspace) error {
			return w.ChangeRoleUntil(cmd.Meta.Actor.UserID, cmd.UserID, role, cmd.Until, now)
		}), nil
	})
}
