package messaging

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
)

// queueTables are the watermill tables that hold SendInvitationEmail
// messages: each partition's and the poison queue's (whose metadata also
// keeps the failure, which may quote the address).
func queueTables() []string {
	var out []string
	for p := range Partitions {
		out = append(out, "watermill_"+PartitionTopic(p))
	}
	return append(out, "watermill_"+TopicInvitationEmailsPoison)
}

// purgeDeleted erases what the mail pipeline keeps of the people whose
// account the batch deletes: their queued and poisoned messages, the
// delivery log's rows (a failure may quote the address) and the development
// mailbox's copies (address, name and link), on tx. The messages name the
// person (userId) and the invitation; the other tables are keyed by
// invitation, so the messages tell which rows are the person's, and go
// last.
func purgeDeleted(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	var users []string
	for _, ev := range events {
		if e, ok := ev.Event.(domain.AccountDeleted); ok {
			users = append(users, e.UserID.String())
		}
	}
	if len(users) == 0 {
		return nil
	}
	var selects []string
	for _, t := range queueTables() {
		selects = append(selects, "SELECT payload::jsonb->>'invitationId' AS inv FROM "+t+" WHERE payload::jsonb->>'userId' = ANY($1)")
	}
	rows, err := tx.Query(ctx, "SELECT DISTINCT inv FROM ("+strings.Join(selects, " UNION ALL ")+") m WHERE inv IS NOT NULL", users)
	if err != nil {
		return fmt.Errorf("purge a deleted account's e-mails: %w", err)
	}
	invs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uuid.UUID, error) {
		var s string
		if err := r.Scan(&s); err != nil {
			return uuid.Nil, err
		}
		return uuid.Parse(s)
	})
	if err != nil {
		return fmt.Errorf("purge a deleted account's e-mails: %w", err)
	}
	b := &pgx.Batch{}
	if len(invs) > 0 {
		b.Queue(`DELETE FROM dev_mailbox WHERE invitation_id = ANY($1)`, invs)
		b.Queue(`DELETE FROM mail_deliveries WHERE invitation_id = ANY($1)`, invs)
	}
	for _, t := range queueTables() {
		b.Queue("DELETE FROM "+t+" WHERE payload::jsonb->>'userId' = ANY($1)", users)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("purge a deleted account's e-mails: %w", err)
	}
	return nil
}
