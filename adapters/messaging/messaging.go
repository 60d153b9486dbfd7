// Package messaging carries side effects over watermill
// (github.com/ThreeDotsLabs/watermill, with watermill-sql on PostgreSQL):
// the invitation e-mail process manager's outbox (outbox.go), the mailer
// that consumes it and mails through a commands.EmailSender (mailer.go,
// composer.go, render.go), the delivery log that owns what became of each
// e-mail and records it as events (deliveries.go), and the invitation
// expiry scheduler (expiry.go).
// docs/email.md tells how they fit and what survives a crash.
package messaging

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/google/uuid"
)

// Topics, whose tables migration 00006 creates (watermill_<topic>).
const (
	// TopicInvitationEmails carries commands.SendInvitationEmail: it is
	// partition 0 of Partitions (see PartitionTopic).
	TopicInvitationEmails = "invitation_emails"
	// Partitions is how many topics the e-mails are spread over, so that
	// as many mailers work side by side (migration 00007).
	Partitions = 4
	// TopicInvitationEmailsPoison keeps the messages that failed for good.
	TopicInvitationEmailsPoison = "invitation_emails_poison"
	// ConsumerGroup is the mailer's group: its offsets say what was
	// mailed, whichever replica holds the mailer lock.
	ConsumerGroup = "usersd-mailer"
)

// PartitionTopic is the topic of partition p: invitation_emails, then
// invitation_emails_p1 and so on.
func PartitionTopic(p int) string {
	if p == 0 {
		return TopicInvitationEmails
	}
	return fmt.Sprintf("%s_p%d", TopicInvitationEmails, p)
}

// partition is where an invitation's e-mails go: all its attempts in one
// partition, so they are mailed in order.
func partition(invitation uuid.UUID) int {
	return int(binary.BigEndian.Uint32(invitation[12:]) % Partitions)
}

// The schema is watermill-sql's default one; the tables come from the
// migration, never from watermill at run time.
var (
	schema  = wsql.DefaultPostgreSQLSchema{}
	offsets = offsetsAdapter{}
)

// logAdapter hands watermill's logs to slog, without its trace level: at
// that level watermill logs SQL arguments, which are message payloads with
// addresses in them. NewLogAdapter makes one (nil: slog.Default()).
type logAdapter struct{ log *slog.Logger }

func NewLogAdapter(l *slog.Logger) watermill.LoggerAdapter {
	if l == nil {
		l = slog.Default()
	}
	return logAdapter{l.With("component", "watermill")}
}

// Error logs watermill's errors, except a cancellation: that is a stop of
// ours ending what was in hand (the message comes back after the restart),
// not a failure, and a clean stop logs no error.
func (a logAdapter) Error(msg string, err error, f watermill.LogFields) {
	if errors.Is(err, context.Canceled) {
		a.log.Info(msg, append(attrs(f), "err", err)...)
		return
	}
	a.log.Error(msg, append(attrs(f), "err", err)...)
}
func (a logAdapter) Info(msg string, f watermill.LogFields)  { a.log.Info(msg, attrs(f)...) }
func (a logAdapter) Debug(msg string, f watermill.LogFields) { a.log.Debug(msg, attrs(f)...) }
func (a logAdapter) Trace(string, watermill.LogFields)       {}
func (a logAdapter) With(f watermill.LogFields) watermill.LoggerAdapter {
	return logAdapter{a.log.With(attrs(f)...)}
}

func attrs(f watermill.LogFields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, k, v)
	}
	return out
}
