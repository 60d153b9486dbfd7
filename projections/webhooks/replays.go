package webhooks

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Replay is a replay asked for and not yet enqueued: the events of a
// workspace after Next and before To (the request itself, which the
// webhook gets as a new event if it subscribes to it) that its webhook
// subscribes to, to deliver again.
type Replay struct {
	ID, WebhookID, WorkspaceID uuid.UUID
	Next, To                   domain.Position
	hook                       domain.Webhook
}

// NextReplay answers the oldest replay still to enqueue; false when none is.
func NextReplay(ctx context.Context, db DB) (Replay, bool, error) {
	var (
		r              Replay
		nc, np, tc, tp int64
		events         []string
	)
	err := db.QueryRow(ctx, `
		SELECT r.replay_id, r.webhook_id, r.workspace_id, r.next_commit, r.next_prepare, r.to_commit, r.to_prepare, w.events
		FROM webhook_replays r JOIN webhooks w USING (webhook_id)
		ORDER BY r.created_at, r.replay_id LIMIT 1`).Scan(&r.ID, &r.WebhookID, &r.WorkspaceID, &nc, &np, &tc, &tp, &events)
	if errors.Is(err, pgx.ErrNoRows) {
		return Replay{}, false, nil
	}
	if err != nil {
		return Replay{}, false, fmt.Errorf("read the replays: %w", err)
	}
	r.Next = domain.Position{Commit: uint64(nc), Prepare: uint64(np)}
	r.To = domain.Position{Commit: uint64(tc), Prepare: uint64(tp)}
	r.hook = domain.Webhook{ID: r.WebhookID, Events: events}
	return r, true, nil
}

// Deliveries answers the deliveries the replay asks for among events (in
// global order, after r.Next), and whether events reach its end.
func (r Replay) Deliveries(events []domain.RecordedEvent) (out []Delivery, done bool) {
	for _, e := range events {
		if !e.Position.Less(r.To) {
			return out, true
		}
		if !r.Next.Less(e.Position) {
			continue
		}
		if ws, ok := domain.WorkspaceOf(e.Event); ok && ws == r.WorkspaceID && r.hook.Matches(domain.EventName(e.Event)) {
			out = append(out, Delivery{ID: DeliveryID(r.WebhookID, e.Metadata.EventID, r.ID), WebhookID: r.WebhookID,
				WorkspaceID: r.WorkspaceID, Replay: r.ID, Event: e})
		}
	}
	return out, false
}

// Advance enqueues deliveries in the log (Enqueued) and moves the replay
// to next, or ends it when done, on tx. It answers false, and writes
// nothing, when the replay is gone (its webhook removed): the queue must
// not get its deliveries either. The webhook's row stays locked until tx
// ends, so that a removal waits for what this enqueues, and then removes
// it with the rest.
func (r Replay) Advance(ctx context.Context, tx pgx.Tx, deliveries []Delivery, next domain.Position, done bool) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, `
		SELECT 1 FROM webhook_replays r JOIN webhooks w USING (webhook_id)
		WHERE r.replay_id = $1 FOR SHARE OF w`, projections.PGID(r.ID)).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replay %s: %w", r.ID, err)
	}
	if err := Enqueued(ctx, tx, deliveries); err != nil {
		return false, err
	}
	if done {
		_, err = tx.Exec(ctx, `DELETE FROM webhook_replays WHERE replay_id = $1`, projections.PGID(r.ID))
	} else {
		var c, p int64
		if c, p, err = projections.PositionColumns(next); err != nil {
			return false, err
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_replays SET next_commit = $2, next_prepare = $3 WHERE replay_id = $1`, projections.PGID(r.ID), c, p)
	}
	if err != nil {
		return false, fmt.Errorf("move replay %s: %w", r.ID, err)
	}
	return true, nil
}
