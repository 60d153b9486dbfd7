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

type AcceptInvitationHandler struct{ d Deps }

func NewAcceptInvitationHandler(d Deps) AcceptInvitationHandler {
	d.check()
	return AcceptInvitationHandler{d}
}

func (h AcceptInvitationHandler) Handle(ctx context.Context, cmd AcceptInvitation) (AcceptInvitationResult, error) {
	token, err := domain.ParseInvitationToken(cmd.Token)
	if err != nil {
		return AcceptInvitationResult{}, err
	}
	now := h.d.Clock.Now()
	var joined domain.Member
	meta := cmd.Meta
	meta.Actor = domain.Actor{}
	pos, err := h.d.update(ctx, token.WorkspaceID, &meta, func(w *domain.Workspace) error {
		joined, err = w.Accept(token, cmd.Name, now)
		if err == nil {
			// The invitee acts for themselves: the audit names them.
			meta.Actor = domain.Actor{UserID: joined.UserID, Email: string(joined.Email)}
		}
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

type LookupInvitationHandler struct{ d Deps }

func NewLookupInvitationHandler(d Deps) LookupInvitationHandler {
	d.check()
	return LookupInvitationHandler{d}
}

func (h LookupInvitationHandler) Handle(ctx context.Context, q LookupInvitation) (InvitationView, error) {
	token, err := domain.ParseInvitationToken(q.Token)
	if err != nil {
		return InvitationView{}, err
	}
	var v InvitationView
	err = h.d.Workspaces.View(ctx, token.WorkspaceID, func(w *domain.Workspace) error {
		m, err := w.Invitation(token, h.d.Clock.Now())
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
