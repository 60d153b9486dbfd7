package commands

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ResendInvitation sends a pending invitation again with a new link; the old
// link dies.
type ResendInvitation struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

// ResendInvitationResult carries the new link's token on its way to the
// mailer; it is never stored.
type ResendInvitationResult struct {
	InvitationID uuid.UUID
	Email        domain.Email
	Token        string
	Position     domain.Position
}

func (c ResendInvitation) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type ResendInvitationHandler = workspaceHandler[ResendInvitation, ResendInvitationResult]

func NewResendInvitationHandler(repo WorkspaceRepository, clock Clock, ids IDs, secrets LinkSecrets, p InvitationPolicy) ResendInvitationHandler {
	if secrets == nil {
		panic("commands: ResendInvitation needs the link secrets")
	}
	return newWorkspaceHandler(repo, clock, ids, func(cmd ResendInvitation) (decision[ResendInvitationResult], error) {
		now := clock.Now()
		var res ResendInvitationResult
		return decision[ResendInvitationResult]{
			decide: func(w *domain.Workspace) error {
				// The new link's secret belongs to the attempt the resend
				// records; deriving it is pure (LinkSecrets cannot fail), so
				// the decision may. Without a pending invitation there is no
				// attempt, and Resend answers why (authorisation first)
				// before any secret matters.
				var secret []byte
				if inv, attempt, err := w.NextAttempt(cmd.UserID); err == nil {
					s := secrets.Secret(cmd.WorkspaceID, inv, attempt)
					secret = s[:]
				}
				id, token, err := w.Resend(cmd.Meta.Actor.UserID, cmd.UserID, secret, now, p.TTL, p.Limits)
				res = ResendInvitationResult{InvitationID: id, Token: token}
				if m, ok := w.Member(cmd.UserID); ok {
					res.Email = m.Email
				}
				return err
			},
			answer: func(at domain.Position) ResendInvitationResult {
				res.Position = at
				return res
			},
		}, nil
	})
}
