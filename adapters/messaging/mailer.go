package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/usersd/usersd/commands"
)

// mail runs the router until ctx ends.
func (s *Service) mail(ctx context.Context) error {
	wlog := NewLogAdapter(s.opts.Logger)
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(s.pool), wsql.SubscriberConfig{
		ConsumerGroup: ConsumerGroup,
		PollInterval:  s.opts.PollInterval,
		// The Retry middleware waits between tries inside one delivery:
		// the deadline must outlast them.
		AckDeadline:    Ptr(30 * time.Minute),
		ResendInterval: time.Second,
		RetryInterval:  time.Second,
		SchemaAdapter:  schema,
		OffsetsAdapter: offsets,
	}, wlog)
	if err != nil {
		return fmt.Errorf("mail subscriber: %w", err)
	}
	poisonPub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(s.pool), wsql.PublisherConfig{SchemaAdapter: schema}, wlog)
	if err != nil {
		return fmt.Errorf("poison queue publisher: %w", err)
	}
	router, err := NewRouter(ctx, s.opts.Logger, s.log)
	if err != nil {
		return err
	}
	dlog, err := openDeliveryLog(ctx, s.pool, s.app.Commands.RecordEmailOutcomes, s.log)
	if err != nil {
		return err
	}
	defer dlog.close()
	m := &mailer{
		compose: newComposer(s.app.Queries.ComposeInvitationEmails, dlog), sender: s.sender,
		publicURL: s.opts.PublicURL, log: dlog, logger: s.log,
	}
	// Outermost first: a message that fails for good is logged as failed
	// (giveUp), then kept in the poison queue and acknowledged; a stop is
	// neither.
	poison, err := PoisonQueue(poisonPub, TopicInvitationEmailsPoison)
	if err != nil {
		return err
	}
	router.AddMiddleware(router.EndWith(), poison, m.giveUp, s.opts.Retry.Middleware(wlog), middleware.Recoverer)
	own := router.Subscriber(sub)
	for p := range Partitions {
		router.AddConsumerHandler(fmt.Sprintf("invitation_mailer_%d", p), PartitionTopic(p), own, m.Handle)
	}

	var wg sync.WaitGroup
	recordCtx, stopRecording := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { dlog.recordUntil(recordCtx) })
	err = router.Run(ctx)
	// Record what the last messages logged before stopping.
	// Bounded: with the database gone, a stop must not wait for TCP
	// timeouts; what is not recorded now is recorded by the next replica.
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelFlush()
	if _, ferr := dlog.record1(flushCtx); ferr != nil {
		s.log.Warn("mail: record delivery outcomes at stop", "err", ferr)
	}
	stopRecording()
	wg.Wait()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// PoisonQueue is watermill's poison queue middleware publishing to topic
// through pub: a message that failed for good is kept there, with the
// reason in its metadata, and acknowledged. A stop (a context cancelled or
// past its deadline) is no failure: the message stays unacknowledged and
// comes back after the restart.
func PoisonQueue(pub message.Publisher, topic string) (message.HandlerMiddleware, error) {
	return middleware.PoisonQueueWithFilter(pub, topic, func(err error) bool {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	})
}

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

// Permanent marks err as a failure that retrying cannot mend: the Retry
// middleware of RetryPolicy gives up at once.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
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
		// Logged as failed, like every message the poison queue keeps.
		if ferr := m.log.failed(ctx, c, "render: "+err.Error()); ferr != nil {
			return ferr
		}
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
		if err == nil || msg.Context().Err() != nil || IsPermanent(err) {
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
