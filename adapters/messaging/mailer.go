package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

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
	// sent holds the attempts this process has handed to the server whose
	// delivery-log row is not written yet, so that a retry of the handler
	// (the row's write failed) does not send them again.
	sent sync.Map // attempt -> struct{}
}

// attempt keys one e-mail.
type attempt struct {
	invitation uuid.UUID
	n          int
}

// noteTimeout bounds how long the delivery log's row of an e-mail already
// handed to the server is retried, past a stop or a database hiccup.
const noteTimeout = 30 * time.Second

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
	key := attempt{c.InvitationID, c.Attempt}
	if _, ok := m.sent.Load(key); ok {
		// Sent by this process; only the log's row is missing.
		if err := m.noteSent(ctx, c); err != nil {
			return err
		}
		m.sent.Delete(key)
		m.recorder.Poke()
		return nil
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
	// A stop is no crash: the row is written past the message's context.
	m.sent.Store(key, struct{}{})
	if err := m.noteSent(ctx, c); err != nil {
		return err
	}
	m.sent.Delete(key)
	m.recorder.Poke()
	return nil
}

// noteSent writes the delivery-log row of a sent e-mail, retrying for up to
// noteTimeout even after ctx ends: the router stopping (a deploy) while a
// server answers its 250 must not leave the e-mail to be sent again.
func (m *Mailer) noteSent(ctx context.Context, c commands.SendInvitationEmail) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	for {
		err := m.log.note(ctx, c, "")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fail logs an attempt as failed for good, also when the stop came while
// the server refused it.
func (m *Mailer) fail(ctx context.Context, c commands.SendInvitationEmail, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
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
