package messaging

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// OutboxName is the process manager's checkpoint key and lock name. Never
// rename it: a new name would start from the first event and mail every
// invitation still valid again.
const OutboxName = "invitation_emails"

// Outbox is the invitation e-mail process manager as a projection: a
// projections.Runner feeds it, and Apply publishes the SendInvitationEmail
// commands of a batch through watermill-sql's publisher on the runner's own
// transaction, the one that also moves the checkpoint. Either both commit
// or neither does: a crash can neither lose a command nor publish one twice.
//
// It is no read model: never rebuild it (a replay would mail again).
type Outbox struct {
	clock commands.Clock
}

var _ projections.Projection = (*Outbox)(nil)

// NewOutbox returns the process manager. clock decides which invitations
// are too old to mail (see commands.InvitationEmailsFor).
func NewOutbox(clock commands.Clock) *Outbox {
	if clock == nil {
		panic("messaging: NewOutbox needs a clock")
	}
	return &Outbox{clock: clock}
}

func (*Outbox) Name() string { return OutboxName }

// Apply publishes a message per e-mail the batch asks for, one INSERT per
// partition, on tx, and then erases the mail of the people whose account
// the batch deletes (purgeDeleted), its own messages included.
func (o *Outbox) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if err := o.publish(ctx, tx, events); err != nil {
		return err
	}
	return purgeDeleted(ctx, tx, events)
}

func (o *Outbox) publish(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	cmds := commands.InvitationEmailsFor(events, o.clock.Now())
	if len(cmds) == 0 {
		return nil
	}
	var parts [Partitions][]*message.Message
	for _, c := range cmds {
		payload, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode SendInvitationEmail: %w", err)
		}
		m := message.NewMessage(MessageID(c.InvitationID, c.Attempt).String(), payload)
		m.Metadata.Set("correlation_id", c.CorrelationID)
		m.SetContext(ctx)
		p := partition(c.InvitationID)
		parts[p] = append(parts[p], m)
	}
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: schema}, nil)
	if err != nil {
		return fmt.Errorf("outbox publisher: %w", err)
	}
	for p, msgs := range parts {
		if len(msgs) == 0 {
			continue
		}
		if err := pub.Publish(PartitionTopic(p), msgs...); err != nil {
			return fmt.Errorf("publish %d invitation e-mails: %w", len(msgs), err)
		}
	}
	return nil
}

// messageNamespace makes message ids from (invitation, attempt), so the
// same e-mail has the same id wherever it is seen (logs, poison queue).
var messageNamespace = uuid.MustParse("5b0e8c55-9d0b-4c77-8a3e-6f1c2a7d9e10")

// MessageID is the watermill message id of one attempt's e-mail.
func MessageID(invitation uuid.UUID, attempt int) uuid.UUID {
	return uuid.NewSHA1(messageNamespace, []byte(invitation.String()+"/"+strconv.Itoa(attempt)))
}
