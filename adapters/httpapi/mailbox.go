package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// MailboxMessage is one e-mail of the development mailbox.
type MailboxMessage struct {
	ID, WorkspaceID, InvitationID uuid.UUID
	To, Subject, Text, HTML       string
	SentAt                        time.Time
}

// Mailbox lists the messages of the development mailbox. workspaces nil means all.
//
// The API never calls List with an empty, non-nil workspaces: a caller who
// may read no workspace's mail gets an empty list without asking.
type Mailbox interface {
	List(ctx context.Context, workspaces []uuid.UUID, limit int) ([]MailboxMessage, error)
}

// Limits of GET /v1/dev/mailbox.
const (
	DefaultMailboxLimit = 50
	MaxMailboxLimit     = 500
)

// mailboxItem is a message as GET /v1/dev/mailbox shows it.
type mailboxItem struct {
	ID           uuid.UUID  `json:"id"`
	WorkspaceID  *uuid.UUID `json:"workspaceId"`
	InvitationID *uuid.UUID `json:"invitationId"`
	To           string     `json:"to"`
	Subject      string     `json:"subject"`
	Text         string     `json:"text"`
	HTML         string     `json:"html"`
	SentAt       time.Time  `json:"sentAt"`
}

// GET /v1/dev/mailbox (an extension, served only with Config.Mailbox): the
// development mailbox, newest first. The platform sees every message; anyone
// else only those of workspaces where they may invite (an active Admin or
// Manager), since the messages hold invitation links.
func (s *Server) devMailbox(w http.ResponseWriter, r *http.Request, p principal) error {
	limit, err := queryLimit(r.URL.Query(), MaxMailboxLimit)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = DefaultMailboxLimit
	}
	if err := s.waitFor(r, projMemberships); err != nil {
		return err
	}
	var workspaces []uuid.UUID // nil: all
	if !p.system {
		mine, err := s.members.ForUser(r.Context(), p.userID)
		if err != nil {
			return err
		}
		workspaces = []uuid.UUID{}
		for _, m := range mine {
			// Admins only: the links are bearer credentials, and a
			// Manager could otherwise accept an Admin invitation they
			// could not have granted.
			if m.Status == domain.StatusActive && m.Role == domain.RoleAdmin {
				workspaces = append(workspaces, m.WorkspaceID)
			}
		}
	}
	items := []mailboxItem{}
	if workspaces == nil || len(workspaces) > 0 {
		msgs, err := s.cfg.Mailbox.List(r.Context(), workspaces, limit)
		if err != nil {
			return err
		}
		for _, m := range msgs[:min(len(msgs), limit)] {
			items = append(items, mailboxItem{
				ID: m.ID, WorkspaceID: optID(m.WorkspaceID), InvitationID: optID(m.InvitationID),
				To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, SentAt: m.SentAt.UTC(),
			})
		}
	}
	return writeJSON(w, http.StatusOK, itemList[mailboxItem]{items})
}
