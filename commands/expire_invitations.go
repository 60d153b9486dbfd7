package commands

import (
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

func (c ExpireInvitations) target() (uuid.UUID, Meta) { return c.WorkspaceID, system(c.Meta) }

type ExpireInvitationsHandler = workspaceHandler[ExpireInvitations, ExpireInvitationsResult]

func NewExpireInvitationsHandler(repo WorkspaceRepository, clock Clock, ids IDs) ExpireInvitationsHandler {
	return newWorkspaceHandler(repo, clock, ids, func(ExpireInvitations) (decision[ExpireInvitationsResult], error) {
		now := clock.Now()
		var n, g int
		return decision[ExpireInvitationsResult]{
			decide: func(w *domain.Workspace) error {
				n = w.ExpireInvitations(now)
				g = w.ExpireRoleGrants(now)
				return nil
			},
			answer: func(at domain.Position) ExpireInvitationsResult {
				return ExpireInvitationsResult{Expired: n, RoleGrants: g, Position: at}
			},
		}, nil
	})
}
