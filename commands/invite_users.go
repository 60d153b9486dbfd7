package commands

import (
	"context"
	"errors"
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
	w        writer
	accounts reserver
	secrets  LinkSecrets
	policy   InvitationPolicy
}

// NewInviteUsersHandler returns the handler; accountIDs makes the user ids
// of addresses that have none yet (nil: RandomAccountIDs).
func NewInviteUsersHandler(repo WorkspaceRepository, accounts Accounts, clock Clock, ids, accountIDs IDs, secrets LinkSecrets, p InvitationPolicy) InviteUsersHandler {
	if secrets == nil {
		panic("commands: InviteUsers needs the link secrets")
	}
	return InviteUsersHandler{newWriter(repo, clock, ids), newReserver(accounts, accountIDs), secrets, p}
}

// errMoreAccounts stops a decision that found addresses without a reserved
// account (the workspace changed since they were prepared): Handle
// reserves them and decides again.
var errMoreAccounts = errors.New("addresses of the batch need an account")

func (h InviteUsersHandler) Handle(ctx context.Context, cmd InviteUsers) (InviteUsersResult, error) {
	role, err := domain.ParseRole(cmd.Role)
	if err != nil {
		return InviteUsersResult{}, err
	}
	entries, err := domain.ParseBatch(cmd.Emails...)
	if err != nil {
		return InviteUsersResult{}, err
	}
	batch := domain.InviteBatch{
		Actor: cmd.Meta.Actor.UserID, Role: role, Entries: entries,
		Now: h.w.clock.Now(), TTL: h.policy.TTL, Limits: h.policy.Limits,
		UserIDs: make(map[domain.Email]uuid.UUID),
	}
	// Prepare. The stored workspace (the decision below may first run on a
	// cached one) tells whether the batch is refused (the inviter
	// suspended, the limit reached on another replica), before any account
	// is reserved, and which addresses need one.
	var need []domain.Email
	if err := h.w.repo.View(ctx, cmd.WorkspaceID, func(w *domain.Workspace) error {
		if err := w.CheckInvite(batch); err != nil {
			return err
		}
		need = w.NeedAccounts(entries)
		return nil
	}); err != nil {
		return InviteUsersResult{}, err
	}
	invitations := h.newInvitations(cmd.WorkspaceID, entries)
	for round := 0; ; round++ {
		if len(need) > 0 {
			ids, err := h.accounts.reserve(ctx, need, h.w.plainStamp(cmd.Meta))
			if err != nil {
				return InviteUsersResult{}, fmt.Errorf("reserve accounts: %w", err)
			}
			for e, id := range ids {
				batch.UserIDs[e] = id
			}
		}
		// Decide: pure, on the state and what was prepared.
		var results []domain.InviteResult
		pos, err := h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
			b := batch
			b.NewInvitation = invitations.next()
			results, need = nil, unreserved(w.NeedAccounts(entries), b.UserIDs)
			if len(need) > 0 {
				// Reserve more only for a batch the workspace takes.
				if err := w.CheckInvite(b); err != nil {
					return err
				}
				return errMoreAccounts
			}
			var err error
			results, err = w.Invite(b)
			return err
		})
		if errors.Is(err, errMoreAccounts) {
			if round < maxAttempts {
				continue
			}
			err = fmt.Errorf("workspace %s: the batch's addresses kept changing: %w", cmd.WorkspaceID, domain.ErrConcurrency)
		}
		if err != nil {
			return InviteUsersResult{}, err
		}
		return InviteUsersResult{Results: results, Position: pos}, nil
	}
}

// preparedInvitations are the ids and first link secrets of the
// invitations a batch may make: one per valid address, as no batch invites
// more.
type preparedInvitations []preparedInvitation

type preparedInvitation struct {
	id     uuid.UUID
	secret []byte
}

func (h InviteUsersHandler) newInvitations(ws uuid.UUID, entries []domain.BatchEntry) preparedInvitations {
	var out preparedInvitations
	for _, e := range entries {
		if e.Valid() {
			id := h.w.ids.NewID()
			secret := h.secrets.Secret(ws, id, domain.FirstAttempt)
			out = append(out, preparedInvitation{id, secret[:]})
		}
	}
	return out
}

// next hands the prepared invitations out in order, from the first on
// each call: each run of a decision gets the same ones.
func (p preparedInvitations) next() func() (uuid.UUID, []byte) {
	i := 0
	return func() (uuid.UUID, []byte) {
		inv := p[i] // Invite asks for at most one per valid address
		i++
		return inv.id, inv.secret
	}
}

// unreserved lists the addresses of need that have no user id in ids.
func unreserved(need []domain.Email, ids map[domain.Email]uuid.UUID) []domain.Email {
	var out []domain.Email
	for _, e := range need {
		if _, ok := ids[e]; !ok {
			out = append(out, e)
		}
	}
	return out
}
