package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Email is one rendered e-mail of one attempt of an invitation.
type Email struct {
	WorkspaceID  uuid.UUID
	InvitationID uuid.UUID
	Attempt      int
	To           domain.Email
	Subject      string
	Text         string
	HTML         string
}

// EmailSender delivers e-mails: SMTP, or the development mailbox. It answers
// a *DeliveryError when the message was not delivered.
type EmailSender interface {
	Send(ctx context.Context, e Email) error
}

// DeliveryError says why an e-mail was not delivered. Its text holds no
// address, so it may be logged and recorded.
type DeliveryError struct {
	// Permanent is true when the server refused the message for good (a
	// 5xx answer): trying again would not help. Everything else (4xx,
	// connection refused, timeouts) is worth retrying.
	Permanent bool
	Reason    string
}

func (e *DeliveryError) Error() string {
	if e.Permanent {
		return "refused for good: " + e.Reason
	}
	return "not delivered, worth retrying: " + e.Reason
}
