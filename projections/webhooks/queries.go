package webhooks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB = projections.DB

// Webhook is a subscription as the API lists it: no secret.
type Webhook struct {
	WebhookID uuid.UUID `json:"webhookId"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"createdAt"`
}

// DeliveryRow is one delivery of the log.
type DeliveryRow struct {
	DeliveryID uuid.UUID `json:"deliveryId"`
	EventID    uuid.UUID `json:"eventId"`
	Type       string    `json:"type"`
	// Position is the event's, which a replay starts after.
	Position       string     `json:"position"`
	Attempts       int        `json:"attempts"`
	Status         string     `json:"status"`
	LastStatusCode *int       `json:"lastStatusCode"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt"`
}

// DeliveryPage is a page of the log, newest first; NextCursor is "" on the
// last page.
type DeliveryPage struct {
	Items      []DeliveryRow
	NextCursor string
}

// Page sizes of the delivery log.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Queries reads the webhooks.
type Queries struct{ db DB }

// NewQueries returns the webhooks' queries on db.
func NewQueries(db DB) *Queries {
	return &Queries{db: projections.NeedDB("webhooks: NewQueries", db)}
}

// List answers a workspace's webhooks, oldest first.
func (q *Queries) List(ctx context.Context, workspace uuid.UUID) ([]Webhook, error) {
	rows, err := q.db.Query(ctx, `
		SELECT webhook_id, url, events, created_at FROM webhooks
		WHERE workspace_id = $1 ORDER BY created_at, webhook_id`, projections.PGID(workspace))
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Webhook, error) {
		var h Webhook
		err := r.Scan(&h.WebhookID, &h.URL, &h.Events, &h.CreatedAt)
		h.CreatedAt = h.CreatedAt.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	if out == nil {
		out = []Webhook{}
	}
	return out, nil
}

// Target is where a delivery goes: what the sender reads of a webhook.
type Target struct {
	WorkspaceID uuid.UUID
	URL         string
}

// Lookup answers where webhook id delivers; false once it is removed.
func (q *Queries) Lookup(ctx context.Context, id uuid.UUID) (Target, bool, error) {
	var t Target
	err := q.db.QueryRow(ctx, `SELECT workspace_id, url FROM webhooks WHERE webhook_id = $1`, projections.PGID(id)).Scan(&t.WorkspaceID, &t.URL)
	if errors.Is(err, pgx.ErrNoRows) {
		return Target{}, false, nil
	}
	if err != nil {
		return Target{}, false, fmt.Errorf("webhook %s: %w", id, err)
	}
	return t, true, nil
}

// Deliveries answers a page of the delivery log of webhook in workspace,
// newest first: limit rows (0: DefaultLimit) after cursor (the
// NextCursor of the page before; "" for the first). An unknown webhook
// is domain.ErrWebhookNotFound; a bad cursor an invalid_input about
// "cursor".
func (q *Queries) Deliveries(ctx context.Context, workspace, webhook uuid.UUID, limit int, cursor string) (DeliveryPage, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	after := int64(-1)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != cursor {
			return DeliveryPage{}, &domain.Error{Code: domain.CodeInvalidInput, Field: "cursor", Message: "not a cursor of this list"}
		}
		after = n
	}
	var exists bool
	err := q.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhooks WHERE webhook_id = $1 AND workspace_id = $2)`,
		projections.PGID(webhook), projections.PGID(workspace)).Scan(&exists)
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("webhook %s: %w", webhook, err)
	}
	if !exists {
		return DeliveryPage{}, domain.ErrWebhookNotFound
	}
	rows, err := q.db.Query(ctx, `
		SELECT seq, delivery_id, event_id, event_type, commit_position, prepare_position,
		       attempts, status, last_status_code, last_attempt_at
		FROM webhook_deliveries
		WHERE webhook_id = $1 AND ($2 < 0 OR seq < $2)
		ORDER BY seq DESC LIMIT $3`, projections.PGID(webhook), after, limit+1)
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("delivery log of webhook %s: %w", webhook, err)
	}
	var (
		page DeliveryPage
		seqs []int64
	)
	page.Items = []DeliveryRow{}
	var (
		seq  int64
		c, p int64
		d    DeliveryRow
	)
	_, err = pgx.ForEachRow(rows, []any{&seq, &d.DeliveryID, &d.EventID, &d.Type, &c, &p, &d.Attempts, &d.Status, &d.LastStatusCode, &d.LastAttemptAt}, func() error {
		row := d
		row.Position = domain.Position{Commit: uint64(c), Prepare: uint64(p)}.String()
		if row.LastAttemptAt != nil {
			t := row.LastAttemptAt.UTC()
			row.LastAttemptAt = &t
		}
		if row.LastStatusCode != nil {
			code := *row.LastStatusCode
			row.LastStatusCode = &code
		}
		page.Items = append(page.Items, row)
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("delivery log of webhook %s: %w", webhook, err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = strconv.FormatInt(seqs[limit-1], 10)
	}
	return page, nil
}
