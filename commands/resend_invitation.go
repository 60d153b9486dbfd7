package commands

import (
	"context"

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

type ResendInvitationHandler struct {
	d      Deps
	policy InvitationPolicy
}

func NewResendInvitationHandler(d Deps, p InvitationPolicy) ResendInvitationHandler {
	d.check()
	return ResendInvitationHandler{d, p}
}

func (h ResendInvitationHandler) Handle(ctx context.Context, cmd ResendInvitation) (ResendInvitationResult, error) {
	now := h.d.Clock.Now()
	var res ResendInvitationResult
	pos, err := h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		invID, attempt, err := w.NextAttempt(cmd.UserID)
		if err != nil {
			// Resend decides the error, authorisation first.
			_, _, err = w.Resend(cmd.Meta.Actor.UserID, cmd.UserID, nil, now, h.policy.TTL, h.policy.Limits)
			return err
		}
		secret, err := h.d.secret(cmd.WorkspaceID, invID, attempt)
		if err != nil {
			return err
		}
		res.InvitationID, res.Token, err = w.Resend(cmd.Meta.Actor.UserID, cmd.UserID, secret, now, h.policy.TTL, h.policy.Limits)
		if m, ok := w.Member(cmd.UserID); ok {
			res.Email = m.Email
		}
		return err
	})
	if err != nil {
		return ResendInvitationResult{}, err
	}
	res.Position = pos
	return res, nil
}
