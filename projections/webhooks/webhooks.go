// Package webhooks keeps the state of webhooks in PostgreSQL (migration
// 00016): the subscriptions as their events applied them, the delivery log
// and the replays asked for. The dispatcher (adapters/webhooks) applies the
// events with Plan in its checkpoint transaction, the sender records its
// attempts with Attempted and GaveUp, and the API reads List and
// Deliveries (queries.go).
//
// It is no read model that a rebuild could replace: its positions are those
// of the dispatcher, which delivers what it applies, and a rebuild would
// deliver every event again.
package webhooks

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Name is the dispatcher's checkpoint key and lock name, which a read of
// the webhooks waits for. Never rename it: a new name would deliver every
// event of the history again.
const Name = "webhooks"

// Statuses of a delivery.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Delivery is one event to deliver to one webhook.
type Delivery struct {
	// ID is DeliveryID(WebhookID, the event's id, Replay).
	ID          uuid.UUID
	WebhookID   uuid.UUID
	WorkspaceID uuid.UUID
	// Replay is the replay that asked for it again; uuid.Nil for the
	// delivery of a new event.
	Replay uuid.UUID
	Event  domain.RecordedEvent
}

var deliveryNamespace = uuid.MustParse("8f1f6c3e-2b8e-4a55-9a7e-0d5b6c1e4f21")

// DeliveryID names the delivery of event to webhook (again for replay,
// uuid.Nil the first time): the same delivery has the same id wherever it
// is seen (the log, the queue, the poison queue).
func DeliveryID(webhook, event, replay uuid.UUID) uuid.UUID {
	b := make([]byte, 0, 48)
	b = append(b, webhook[:]...)
	b = append(b, event[:]...)
	b = append(b, replay[:]...)
	return uuid.NewSHA1(deliveryNamespace, b)
}

// Plan is what a batch of events asks of the sender.
type Plan struct {
	// Deliveries are the batch's deliveries, in the events' order; their
	// rows are in the delivery log, pending.
	Deliveries []Delivery
	// Removed are the webhooks the batch removed: their deliveries still
	// queued must go.
	Removed []uuid.UUID
}

// subscription is what delivering needs of a webhook.
type subscription struct {
	id    uuid.UUID
	since domain.Position // its WebhookSubscribed event
	hook  domain.Webhook
}

// Apply applies a batch of events, in order, on tx: WebhookSubscribed adds
// a subscription (which takes its own event: the first delivery a webhook
// gets says it exists), WebhookRemoved drops one with its delivery log,
// replays and secret, WebhookReplayRequested becomes a replay (Replays).
// Every event of a workspace is delivered to each of its webhooks that
// subscribes to its type, from its subscription on; those deliveries go
// into the log, pending, and come back in Plan. Apply is idempotent: a
// webhook's own position decides which events it gets, and rows are
// keyed by id.
func Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) (Plan, error) {
	var plan Plan
	var workspaces []uuid.UUID
	for _, e := range events {
		if ws, ok := domain.WorkspaceOf(e.Event); ok && !slices.Contains(workspaces, ws) {
			workspaces = append(workspaces, ws)
		}
	}
	if len(workspaces) == 0 {
		return plan, nil
	}
	subs, err := loadSubscriptions(ctx, tx, workspaces)
	if err != nil {
		return plan, err
	}
	for _, e := range events {
		ws, ok := domain.WorkspaceOf(e.Event)
		if !ok {
			continue
		}
		switch ev := e.Event.(type) {
		case domain.WebhookSubscribed:
			if err := subscribe(ctx, tx, e, ev); err != nil {
				return plan, err
			}
			if !slices.ContainsFunc(subs[ws], func(s subscription) bool { return s.id == ev.WebhookID }) {
				subs[ws] = append(subs[ws], subscription{id: ev.WebhookID, since: e.Position,
					hook: domain.Webhook{ID: ev.WebhookID, URL: ev.URL, Events: ev.Events}})
			}
		case domain.WebhookRemoved:
			if err := remove(ctx, tx, ev.WebhookID); err != nil {
				return plan, err
			}
			subs[ws] = slices.DeleteFunc(subs[ws], func(s subscription) bool { return s.id == ev.WebhookID })
			plan.Deliveries = slices.DeleteFunc(plan.Deliveries, func(d Delivery) bool { return d.WebhookID == ev.WebhookID })
			plan.Removed = append(plan.Removed, ev.WebhookID)
		case domain.WebhookReplayRequested:
			if err := askReplay(ctx, tx, e, ev); err != nil {
				return plan, err
			}
		}
		name := domain.EventName(e.Event)
		for _, s := range subs[ws] {
			if !e.Position.Less(s.since) && s.hook.Matches(name) {
				plan.Deliveries = append(plan.Deliveries, Delivery{
					ID: DeliveryID(s.id, e.Metadata.EventID, uuid.Nil), WebhookID: s.id, WorkspaceID: ws, Event: e,
				})
			}
		}
	}
	return plan, Enqueued(ctx, tx, plan.Deliveries)
}

func loadSubscriptions(ctx context.Context, tx pgx.Tx, workspaces []uuid.UUID) (map[uuid.UUID][]subscription, error) {
	rows, err := tx.Query(ctx, `
		SELECT webhook_id, workspace_id, url, events, commit_position, prepare_position
		FROM webhooks WHERE workspace_id = ANY($1) ORDER BY created_at, webhook_id`, projections.PGIDs(workspaces))
	if err != nil {
		return nil, fmt.Errorf("read the webhooks: %w", err)
	}
	subs := make(map[uuid.UUID][]subscription, len(workspaces))
	var (
		s         subscription
		ws        uuid.UUID
		c, p      int64
		url       string
		eventsSub []string
	)
	_, err = pgx.ForEachRow(rows, []any{&s.id, &ws, &url, &eventsSub, &c, &p}, func() error {
		subs[ws] = append(subs[ws], subscription{id: s.id, since: domain.Position{Commit: uint64(c), Prepare: uint64(p)},
			hook: domain.Webhook{ID: s.id, URL: url, Events: slices.Clone(eventsSub)}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the webhooks: %w", err)
	}
	return subs, nil
}

func subscribe(ctx context.Context, tx pgx.Tx, e domain.RecordedEvent, ev domain.WebhookSubscribed) error {
	c, p, err := projections.PositionColumns(e.Position)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO webhooks (webhook_id, workspace_id, url, events, created_at, commit_position, prepare_position)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (webhook_id) DO NOTHING`,
		projections.PGID(ev.WebhookID), projections.PGID(ev.WorkspaceID), ev.URL, ev.Events, e.Metadata.OccurredAt, c, p)
	if err != nil {
		return fmt.Errorf("subscribe webhook %s: %w", ev.WebhookID, err)
	}
	return nil
}

// remove drops a webhook, its log and replays (ON DELETE CASCADE) and its
// secret.
func remove(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE webhook_id = $1`, projections.PGID(id)); err != nil {
		return fmt.Errorf("remove webhook %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM webhook_secrets WHERE webhook_id = $1`, projections.PGID(id)); err != nil {
		return fmt.Errorf("remove the secret of webhook %s: %w", id, err)
	}
	return nil
}

func askReplay(ctx context.Context, tx pgx.Tx, e domain.RecordedEvent, ev domain.WebhookReplayRequested) error {
	from, err := domain.ParsePosition(ev.FromPosition)
	if err != nil {
		return fmt.Errorf("replay %s: %w", e.Metadata.EventID, err)
	}
	fc, fp, err := projections.PositionColumns(from)
	if err != nil {
		return err
	}
	tc, tp, err := projections.PositionColumns(e.Position)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO webhook_replays (replay_id, webhook_id, workspace_id, next_commit, next_prepare, to_commit, to_prepare)
		SELECT $1, webhook_id, workspace_id, $3, $4, $5, $6 FROM webhooks WHERE webhook_id = $2
		ON CONFLICT (replay_id) DO NOTHING`,
		projections.PGID(e.Metadata.EventID), projections.PGID(ev.WebhookID), fc, fp, tc, tp)
	if err != nil {
		return fmt.Errorf("replay %s: %w", e.Metadata.EventID, err)
	}
	return nil
}

// Enqueued writes the log's pending rows of deliveries (those it has
// already are left as they are).
func Enqueued(ctx context.Context, tx pgx.Tx, deliveries []Delivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	n := len(deliveries)
	ids, hooks, events := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	types := make([]string, n)
	commits, prepares := make([]int64, n), make([]int64, n)
	for i, d := range deliveries {
		c, p, err := projections.PositionColumns(d.Event.Position)
		if err != nil {
			return err
		}
		ids[i], hooks[i], events[i] = d.ID, d.WebhookID, d.Event.Metadata.EventID
		types[i], commits[i], prepares[i] = domain.EventName(d.Event.Event), c, p
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event_type, commit_position, prepare_position)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[])
		ON CONFLICT (delivery_id) DO NOTHING`,
		projections.PGIDs(ids), projections.PGIDs(hooks), projections.PGIDs(events), types, commits, prepares)
	if err != nil {
		return fmt.Errorf("log %d webhook deliveries: %w", n, err)
	}
	return nil
}

// asyncCommit makes the statement's own transaction commit without
// waiting for its flush to disk: the log is the sender's account of its
// attempts, and the acknowledgement of the queue, committed after it and
// synchronously, flushes it anyway (the write-ahead log is flushed in
// order). Only a crash of PostgreSQL itself within that moment loses it,
// and the delivery is then handed out again.
const asyncCommit = `WITH sync AS (SELECT set_config('synchronous_commit', 'off', true))`

// Attempt is one attempt at a delivery: when it started, the receiver's
// HTTP status (0: no answer), and whether it was delivered.
type Attempt struct {
	Delivery  uuid.UUID
	Status    int
	Delivered bool
	At        time.Time
}

// Attempted records attempts at deliveries, in their order, in one
// statement. An attempt whose delivery the log no longer has (its webhook
// was removed) changes nothing.
func Attempted(ctx context.Context, db DB, attempts []Attempt) error {
	n := len(attempts)
	ids, codes, delivered, at := make([]uuid.UUID, n), make([]int32, n), make([]bool, n), make([]time.Time, n)
	for i, a := range attempts {
		ids[i], codes[i], delivered[i], at[i] = a.Delivery, int32(a.Status), a.Delivered, a.At
	}
	// A delivery tried twice in the batch (a retry) counts both tries and
	// keeps the last one's status code and time.
	var one int
	err := db.QueryRow(ctx, asyncCommit+`,
		a AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::bool[], $4::timestamptz[]) WITH ORDINALITY AS a(id, code, delivered, at, n)),
		per AS (
			SELECT DISTINCT ON (id) id, count(*) OVER (PARTITION BY id) AS tries, bool_or(delivered) OVER (PARTITION BY id) AS delivered,
				code, at
			FROM a ORDER BY id, n DESC),
		done AS (
			UPDATE webhook_deliveries d SET attempts = d.attempts + per.tries, last_status_code = NULLIF(per.code, 0), last_attempt_at = per.at,
				status = CASE WHEN d.status = 'delivered' OR per.delivered THEN 'delivered' ELSE d.status END
			FROM per, sync WHERE d.delivery_id = per.id RETURNING 1)
		SELECT count(*) FROM done`, projections.PGIDs(ids), codes, delivered, at).Scan(&one)
	if err != nil {
		return fmt.Errorf("log %d attempts at webhook deliveries: %w", n, err)
	}
	return nil
}

// GaveUp marks a delivery failed: its last try is over.
func GaveUp(ctx context.Context, db DB, delivery uuid.UUID) error {
	var n int
	err := db.QueryRow(ctx, asyncCommit+`,
		done AS (UPDATE webhook_deliveries SET status = 'failed' FROM sync WHERE delivery_id = $1 AND status = 'pending' RETURNING 1)
		SELECT count(*) FROM done`, projections.PGID(delivery)).Scan(&n)
	if err != nil {
		return fmt.Errorf("log the failure of delivery %s: %w", delivery, err)
	}
	return nil
}
