package commands

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// AcceptInvitation turns the invitation a link's token proves into an
// active membership, completing the invitee's profile with a name.
type AcceptInvitation struct {
	Token string
	Name  string
	Meta  Meta
}

// AcceptInvitationResult says who joined where with which role.
type AcceptInvitationResult struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Role        domain.Role
	Position    domain.Position
}

type AcceptInvitationHandler struct{ w writer }

func NewAcceptInvitationHandler(repo WorkspaceRepository, clock Clock, ids IDs) AcceptInvitationHandler {
	return AcceptInvitationHandler{newWriter(repo, clock, ids)}
}

func (h AcceptInvitationHandler) Handle(ctx context.Context, cmd AcceptInvitation) (AcceptInvitationResult, error) {
	token, err := domain.ParseInvitationToken(cmd.Token)
	if err != nil {
		return AcceptInvitationResult{}, err
	}
	now := h.w.clock.Now()
	meta := cmd.Meta
	meta.Actor = domain.Actor{} // the invitee, once known: inviteeActs
	var joined domain.Member
	pos, err := h.w.update(ctx, token.WorkspaceID, func() Stamp { return inviteeActs(h.w.stamp(meta)) }, func(w *domain.Workspace) error {
		var err error
		joined, err = w.Accept(token, cmd.Name, now)
		return err
	})
	if errors.Is(err, domain.ErrWorkspaceNotFound) {
		// A token naming no workspace is a bad token, nothing more.
		return AcceptInvitationResult{}, domain.ErrInvalidToken
	}
	if err != nil {
		return AcceptInvitationResult{}, err
	}
	return AcceptInvitationResult{WorkspaceID: token.WorkspaceID, UserID: joined.UserID, Role: joined.Role, Position: pos}, nil
}

// inviteeActs names the invitee as the actor of their acceptance: the
// audit shows who joined, not an anonymous caller.
func inviteeActs(stamp Stamp) Stamp {
	return func(w *domain.Workspace, e domain.Event) domain.Metadata {
		m := stamp(w, e)
		if a, ok := e.(domain.InvitationAccepted); ok {
			m.Actor = domain.Actor{UserID: a.UserID, Email: a.Email}
		}
		return m
	}
}

// LookupInvitation answers what an invitation link shows, without using it.
type LookupInvitation struct{ Token string }

// InvitationView is what the accept page shows.
type InvitationView struct {
	WorkspaceID   uuid.UUID
	WorkspaceName string
	Email         domain.Email
	Role          domain.Role
	Invitation    domain.Invitation
}

type LookupInvitationHandler struct {
	repo  WorkspaceRepository
	clock Clock
}

func NewLookupInvitationHandler(repo WorkspaceRepository, clock Clock) LookupInvitationHandler {
	if repo == nil || clock == nil {
		panic("commands: LookupInvitation needs a workspace repository and a clock")
	}
	return LookupInvitationHandler{repo, clock}
}

func (h LookupInvitationHandler) Handle(ctx context.Context, q LookupInvitation) (InvitationView, error) {
	token, err := domain.ParseInvitationToken(q.Token)
	if err != nil {
		return InvitationView{}, err
	}
	now := h.clock.Now()
	var v InvitationView
	err = h.repo.View(ctx, token.WorkspaceID, func(w *domain.Workspace) error {
		m, err := w.Invitation(token, now)
		if err != nil {
			return err
		}
		v = InvitationView{WorkspaceID: w.ID(), WorkspaceName: w.Name(), Email: m.Email, Role: m.Role, Invitation: *m.Invitation}
		return nil
	})
	if errors.Is(err, domain.ErrWorkspaceNotFound) {
		return InvitationView{}, domain.ErrInvalidToken
	}
	return v, err
}
