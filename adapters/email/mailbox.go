package email

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
)

// Mailbox is the development mailbox: instead of leaving, e-mails are kept
// in the dev_mailbox table, so they survive restarts and every replica lists
// them. It holds working links, as any inbox does: it is for development,
// never for production (set SMTP_URL there).
type Mailbox struct {
	pool *pgxpool.Pool
	ids  func() uuid.UUID
}

var _ commands.EmailSender = (*Mailbox)(nil)

// NewMailbox returns the mailbox in pool's database.
func NewMailbox(pool *pgxpool.Pool) *Mailbox {
	if pool == nil {
		panic("email: NewMailbox needs a pool")
	}
	return &Mailbox{pool: pool, ids: func() uuid.UUID { return uuid.Must(uuid.NewV7()) }}
}

// Send keeps e. The same invitation attempt kept twice stays one message.
func (m *Mailbox) Send(ctx context.Context, e commands.Email) error {
	_, err := m.pool.Exec(ctx, `
		INSERT INTO dev_mailbox (id, workspace_id, invitation_id, attempt, to_address, subject, text_body, html_body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (invitation_id, attempt) DO NOTHING`,
		m.ids(), e.WorkspaceID, e.InvitationID, e.Attempt, string(e.To), e.Subject, e.Text, e.HTML)
	if err != nil {
		return &commands.DeliveryError{Reason: fmt.Sprintf("development mailbox: %v", err)}
	}
	return nil
}

// MailboxMessage is one e-mail of the mailbox.
type MailboxMessage struct {
	ID, WorkspaceID, InvitationID uuid.UUID
	To, Subject, Text, HTML       string
	SentAt                        time.Time
}

// List answers the newest limit messages (at most 500) of the given
// workspaces, newest first; workspaces nil means every workspace.
func (m *Mailbox) List(ctx context.Context, workspaces []uuid.UUID, limit int) ([]MailboxMessage, error) {
	limit = min(max(limit, 0), 500)
	if limit == 0 || (workspaces != nil && len(workspaces) == 0) {
		return []MailboxMessage{}, nil
	}
	const cols = `SELECT id, workspace_id, invitation_id, to_address, subject, text_body, html_body, sent_at FROM dev_mailbox`
	var rows pgx.Rows
	var err error
	if workspaces == nil {
		rows, err = m.pool.Query(ctx, cols+` ORDER BY sent_at DESC, id DESC LIMIT $1`, limit)
	} else {
		rows, err = m.pool.Query(ctx, cols+` WHERE workspace_id = ANY($1) ORDER BY sent_at DESC, id DESC LIMIT $2`, workspaces, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list the development mailbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MailboxMessage, error) {
		var x MailboxMessage
		err := r.Scan(&x.ID, &x.WorkspaceID, &x.InvitationID, &x.To, &x.Subject, &x.Text, &x.HTML, &x.SentAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the development mailbox: %w", err)
	}
	return out, nil
}
