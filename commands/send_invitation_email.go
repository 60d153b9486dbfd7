package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// SendInvitationEmail asks the mailer for the e-mail of one attempt of an
// invitation. It names the invitation and the attempt, never the link: the
// mailer derives the link's secret again (LinkSecrets), so the message can
// sit in an outbox table without being a key to the workspace.
type SendInvitationEmail struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Attempt      int       `json:"attempt"`
	// SentBy is who invited or resent.
	SentBy    uuid.UUID `json:"sentBy"`
	ExpiresAt time.Time `json:"expiresAt"`
	// CorrelationID and CausationID (the event's id) carry the request's
	// trail into the outcome's event.
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
}

// The process manager's reactions: pure functions from an event to the
// command it causes.

// SendInvitationEmailOnUserInvited mails a new invitation's first link.
func SendInvitationEmailOnUserInvited(e domain.UserInvited, m domain.Metadata) SendInvitationEmail {
	return SendInvitationEmail{
		WorkspaceID: e.WorkspaceID, InvitationID: e.InvitationID, UserID: e.UserID,
		Attempt: domain.FirstAttempt, SentBy: e.InvitedBy, ExpiresAt: e.ExpiresAt,
		CorrelationID: m.CorrelationID, CausationID: m.EventID.String(),
	}
}

// SendInvitationEmailOnInvitationResent mails a resent invitation's new link.
func SendInvitationEmailOnInvitationResent(e domain.InvitationResent, m domain.Metadata) SendInvitationEmail {
	return SendInvitationEmail{
		WorkspaceID: e.WorkspaceID, InvitationID: e.InvitationID, UserID: e.UserID,
		Attempt: e.Attempt, SentBy: e.ResentBy, ExpiresAt: e.ExpiresAt,
		CorrelationID: m.CorrelationID, CausationID: m.EventID.String(),
	}
}

// InvitationEmailsFor runs the reactions over a batch of events, in order.
// An invitation already expired by now is not mailed: that happens when the
// process manager starts on an old history, whose links are dead anyway.
func InvitationEmailsFor(events []domain.RecordedEvent, now time.Time) []SendInvitationEmail {
	var out []SendInvitationEmail
	for _, r := range events {
		var c SendInvitationEmail
		switch e := r.Event.(type) {
		case domain.UserInvited:
			c = SendInvitationEmailOnUserInvited(e, r.Metadata)
		case domain.InvitationResent:
			c = SendInvitationEmailOnInvitationResent(e, r.Metadata)
		default:
			continue
		}
		if now.Before(c.ExpiresAt) {
			out = append(out, c)
		}
	}
	return out
}

// InvitationEmail is everything an invitation e-mail says.
type InvitationEmail struct {
	To            domain.Email
	WorkspaceName string
	// InviterName and InviterEmail are who invited or resent, as they are
	// now; empty if they have left the workspace.
	InviterName  string
	InviterEmail domain.Email
	Role         domain.Role
	ExpiresAt    time.Time
	// Token is the link's token: {public URL}/accept?token=Token.
	Token string
}

// ErrEmailNotNeeded answers ComposeInvitationEmail for an attempt whose link
// no longer works: the invitation was accepted, revoked, resent or expired
// since, or the link key changed. Nothing should be sent.
var ErrEmailNotNeeded = errors.New("the invitation's link of this attempt no longer works")

// ComposeInvitationEmails asks for the e-mails of SendInvitationEmail
// commands of one workspace, composed with one look at it: a batch
// invitation costs one read of the workspace for all its e-mails.
type ComposeInvitationEmails struct {
	WorkspaceID uuid.UUID
	Emails      []SendInvitationEmail
}

// ComposedInvitationEmail answers one SendInvitationEmail: its e-mail, or
// Err, ErrEmailNotNeeded when its link no longer works.
type ComposedInvitationEmail struct {
	Mail InvitationEmail
	Err  error
}

// ComposeInvitationEmailsHandler builds the e-mails from the workspace as it
// is now.
type ComposeInvitationEmailsHandler struct {
	repo    WorkspaceRepository
	clock   Clock
	secrets LinkSecrets
}

func NewComposeInvitationEmailsHandler(repo WorkspaceRepository, clock Clock, secrets LinkSecrets) ComposeInvitationEmailsHandler {
	if repo == nil || clock == nil || secrets == nil {
		panic("commands: ComposeInvitationEmails needs a workspace repository, a clock and the link secrets")
	}
	return ComposeInvitationEmailsHandler{repo, clock, secrets}
}

// Handle derives each attempt's link and checks it the way accepting
// would, so that an e-mail goes out only with a link that works at this
// moment. It answers one result per command, in order, and also answers the
// error of reading the workspace (each command's result carries it too).
func (h ComposeInvitationEmailsHandler) Handle(ctx context.Context, q ComposeInvitationEmails) ([]ComposedInvitationEmail, error) {
	out := make([]ComposedInvitationEmail, len(q.Emails))
	tokens := make([]domain.InvitationToken, len(q.Emails))
	for i, c := range q.Emails {
		if c.WorkspaceID != q.WorkspaceID {
			out[i].Err = fmt.Errorf("command for workspace %s composed with workspace %s", c.WorkspaceID, q.WorkspaceID)
			continue
		}
		secret := h.secrets.Secret(c.WorkspaceID, c.InvitationID, c.Attempt)
		tokens[i] = domain.InvitationToken{WorkspaceID: c.WorkspaceID, InvitationID: c.InvitationID, Secret: secret[:]}
	}
	now := h.clock.Now()
	err := h.repo.View(ctx, q.WorkspaceID, func(w *domain.Workspace) error {
		for i, c := range q.Emails {
			if out[i].Err != nil {
				continue
			}
			m, err := w.Invitation(tokens[i], now)
			if err != nil {
				out[i].Err = ErrEmailNotNeeded
				continue
			}
			mail := InvitationEmail{
				To: m.Email, WorkspaceName: w.Name(), Role: m.Role,
				ExpiresAt: m.Invitation.ExpiresAt, Token: tokens[i].String(),
			}
			if by, ok := w.Member(c.SentBy); ok {
				mail.InviterName, mail.InviterEmail = by.Name, by.Email
			}
			out[i].Mail = mail
		}
		return nil
	})
	if errors.Is(err, domain.ErrWorkspaceNotFound) {
		err = nil // no workspace, no e-mail: every link is dead
		for i := range out {
			if out[i].Err == nil {
				out[i].Err = ErrEmailNotNeeded
			}
		}
	}
	if err != nil {
		for i := range out {
			if out[i].Err == nil {
				out[i].Err = err
			}
		}
	}
	return out, err
}
