package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/usersd/usersd/commands"
)

// Mailer handles SendInvitationEmail messages: it composes the e-mail from
// the workspace as it is now, sends it, and logs the outcome for the
// Recorder.
//
// Exactly one e-mail per attempt, except in one window: a crash after the
// server accepted the message and before the delivery log has its row.
// The message is then delivered again and the e-mail sent a second time.
type Mailer struct {
	compose   *composer
	sender    commands.EmailSender
	publicURL string
	log       deliveries
	recorder  *Recorder
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
func (m *Mailer) Handle(msg *message.Message) error {
	ctx := msg.Context()
	c, err := decode(msg)
	if err != nil {
		return err
	}
	done, mail, err := m.compose.compose(ctx, c)
	if done {
		// A redelivery: the e-mail left (or failed for good) already.
		m.recorder.Poke()
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
		if err := m.fail(ctx, c, de.Reason); err != nil {
			return err
		}
		return permanentError{err}
	}
	if err != nil {
		return err
	}
	// The window: a crash here sends this e-mail again after the restart.
	if err := m.log.note(ctx, c, ""); err != nil {
		return err
	}
	m.recorder.Poke()
	return nil
}

// fail logs an attempt as failed for good.
func (m *Mailer) fail(ctx context.Context, c commands.SendInvitationEmail, reason string) error {
	if err := m.log.note(ctx, c, reason); err != nil {
		return err
	}
	m.recorder.Poke()
	m.logger.Warn("mail: invitation e-mail failed for good", "invitation", c.InvitationID, "attempt", c.Attempt, "reason", reason)
	return nil
}

// giveUp is the middleware between the poison queue and Retry: a message
// that still fails after the last retry is logged as failed, so the user
// list shows it, before the poison queue keeps it. A stop (the context
// ended) is no failure: the message stays unacknowledged and comes back
// after the restart.
func (m *Mailer) giveUp(h message.HandlerFunc) message.HandlerFunc {
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
		if ferr := m.fail(msg.Context(), c, "gave up after retries: "+reason); ferr != nil {
			return out, errors.Join(err, ferr)
		}
		return out, err
	}
}
