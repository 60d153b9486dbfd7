package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// InvitationPolicy is the configured lifetime of links and the daily limits.
type InvitationPolicy struct {
	TTL    time.Duration
	Limits domain.InviteLimits
}

// DefaultInvitationPolicy is the product's default: links valid 7 days, 500
// invitations and resends a day per workspace and per inviter.
func DefaultInvitationPolicy() InvitationPolicy {
	return InvitationPolicy{TTL: 7 * 24 * time.Hour, Limits: domain.InviteLimits{PerWorkspace: 500, PerInviter: 500}}
}

// InviteUsers invites one or more addresses with one role.
type InviteUsers struct {
	WorkspaceID uuid.UUID
	// Emails are lists as typed: each may hold several addresses separated
	// by commas, semicolons, newlines or spaces.
	Emails []string
	Role   string
	Meta   Meta
}

// InviteUsersResult has one result per distinct address, in input order.
type InviteUsersResult struct {
	Results  []domain.InviteResult
	Position domain.Position
}

type InviteUsersHandler struct {
	d      Deps
	policy InvitationPolicy
}

func NewInviteUsersHandler(d Deps, p InvitationPolicy) InviteUsersHandler {
	d.check()
	return InviteUsersHandler{d, p}
}

func (h InviteUsersHandler) Handle(ctx context.Context, cmd InviteUsers) (InviteUsersResult, error) {
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return InviteUsersResult{}, err
	}
	entries, err := domain.ParseBatch(cmd.Emails...)
	if err != nil {
		return InviteUsersResult{}, err
	}
	now := h.d.Clock.Now()
	newBatch := func() domain.InviteBatch {
		return domain.InviteBatch{
			Actor: cmd.Meta.Actor.UserID, Role: role, Entries: entries,
			Now: now, TTL: h.policy.TTL, Limits: h.policy.Limits,
		}
	}
	// The update below may first decide on a cached aggregate, and
	// reserving accounts writes before the workspace's append proves the
	// cache current: check the batch on the stored workspace first, so that
	// a refusal (the inviter suspended, the limit reached on another
	// replica) reserves nothing.
	if err := h.d.Workspaces.View(ctx, cmd.WorkspaceID, func(w *domain.Workspace) error {
		return w.CheckInvite(newBatch())
	}); err != nil {
		return InviteUsersResult{}, err
	}
	var results []domain.InviteResult
	pos, err := h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		batch := newBatch()
		// Refuse a batch the workspace would refuse (who acts, the role, the
		// limits) before reserving any account, so a refusal writes nothing.
		if err := w.CheckInvite(batch); err != nil {
			return err
		}
		ids, err := h.d.Accounts.Resolve(ctx, w.NeedAccounts(entries), h.d.newAccountID, h.d.plainStamp(&cmd.Meta))
		if err != nil {
			return fmt.Errorf("reserve accounts: %w", err)
		}
		var secretErr error
		batch.UserIDs = ids
		batch.NewInvitation = func() (uuid.UUID, []byte) {
			id := h.d.IDs.NewID()
			s, err := h.d.secret(cmd.WorkspaceID, id, domain.FirstAttempt)
			if err != nil {
				secretErr = err
			}
			return id, s
		}
		results, err = w.Invite(batch)
		if err == nil && secretErr != nil {
			w.Discard()
			return secretErr
		}
		return err
	})
	if err != nil {
		return InviteUsersResult{}, err
	}
	return InviteUsersResult{Results: results, Position: pos}, nil
}
