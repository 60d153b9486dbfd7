package messaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/usersd/usersd/commands"
)

// mailer handles SendInvitationEmail messages: it composes the e-mail from
// the workspace as it is now, sends it, and logs the outcome in the
// delivery log, which records it as an event.
//
// Exactly one e-mail per attempt, except in one window: a crash after the
// server accepted the message and before the delivery log has its row.
// The message is then delivered again and the e-mail sent a second time.
type mailer struct {
	compose   *composer
	sender    commands.EmailSender
	publicURL string
	log       *deliveryLog
	logger    *slog.Logger
}

// permanentError marks a failure that retrying cannot mend.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// decode reads a message's command.
func decode(msg *message.Message) (commands.SendInvitationEmail, error) {
	var c commands.SendInvitationEmail
	if err := json.Unmarshal(msg.Payload, &c); err != nil {
		return c, permanentError{fmt.Errorf("message %s is not a SendInvitationEmail: %w", msg.UUID, err)}
	}
	if c.Attempt < 1 {
		return c, permanentError{fmt.Errorf("message %s: attempt %d", msg.UUID, c.Attempt)}
	}
	return c, nil
}

// Handle is the router's handler.
func (m *mailer) Handle(msg *message.Message) error {
	ctx := msg.Context()
	c, err := decode(msg)
	if err != nil {
		return err
	}
	if m.log.wasSent(c) {
		// Sent by this process; only the log's row is missing.
		return m.log.sent(ctx, c)
	}
	done, mail, err := m.compose.compose(ctx, c)
	if done {
		// A redelivery: the e-mail left (or failed for good) already;
		// its outcome may be unrecorded yet.
		m.log.wake()
		return nil
	}
	if errors.Is(err, commands.ErrEmailNotNeeded) {
		m.logger.Info("mail: not sent, the link of this attempt no longer works",
			"invitation", c.InvitationID, "attempt", c.Attempt)
		return nil
	}
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	e, err := render(mail, c, m.publicURL)
	if err != nil {
		return permanentError{err}
	}
	err = m.sender.Send(ctx, e)
	var de *commands.DeliveryError
	if errors.As(err, &de) && de.Permanent {
		if err := m.log.failed(ctx, c, de.Reason); err != nil {
			return err
		}
		return permanentError{err}
	}
	if err != nil {
		return err
	}
	// The window: a crash here sends this e-mail again after the restart.
	// A stop is no crash: the row is written past the message's context.
	return m.log.sent(ctx, c)
}

// giveUp is the middleware between the poison queue and Retry: a message
// that still fails after the last retry is logged as failed, so the user
// list shows it, before the poison queue keeps it. A stop (the context
// ended) is no failure: the message stays unacknowledged and comes back
// after the restart.
func (m *mailer) giveUp(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil || msg.Context().Err() != nil || isPermanent(err) {
			return out, err
		}
		c, derr := decode(msg)
		if derr != nil {
			return out, err
		}
		reason := err.Error()
		var de *commands.DeliveryError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		if ferr := m.log.failed(msg.Context(), c, "gave up after retries: "+reason); ferr != nil {
			return out, errors.Join(err, ferr)
		}
		return out, err
	}
}
