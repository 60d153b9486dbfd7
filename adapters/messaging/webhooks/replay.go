package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/pause"
	"github.com/usersd/usersd/projections"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// replayIdle is how long the replays wait when none is asked for.
const replayIdle = time.Second

// replayBatch is how many events a replay reads (and queues, in one
// transaction) at a time.
const replayBatch = 500

// errReplayed ends a replay's reading of the history.
var errReplayed = errors.New("replay done")

// replayUntil queues the replays asked for, oldest first, one at a time,
// until ctx ends. A replay reads the history from where it got to, so a
// crash or a stop resumes it.
func (s *Service) replayUntil(ctx context.Context) {
	for ctx.Err() == nil {
		r, ok, err := projwebhooks.NextReplay(ctx, s.pool)
		if err == nil && ok {
			err = s.replay(ctx, r)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhook: replay", "err", err)
		}
		if err != nil || !ok {
			if pause.For(ctx, replayIdle) != nil {
				return
			}
		}
	}
}

// replay queues r's deliveries, a batch of events at a time, each batch in
// one transaction with the replay's progress.
func (s *Service) replay(ctx context.Context, r projwebhooks.Replay) error {
	err := s.src.Subscribe(ctx, r.Next, replayBatch, func(ctx context.Context, b projections.Batch) error {
		deliveries, done := r.Deliveries(b.Events)
		if len(b.Events) == 0 && !b.CaughtUp {
			return nil
		}
		kept := true
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			if kept, err = r.Advance(ctx, tx, deliveries, b.Checkpoint, done); err != nil || !kept {
				return err
			}
			return enqueue(ctx, tx, deliveries)
		})
		if err != nil {
			return fmt.Errorf("replay %s: %w", r.ID, err)
		}
		if done || !kept {
			return errReplayed
		}
		r.Next = b.Checkpoint
		return nil
	})
	if errors.Is(err, errReplayed) {
		s.log.Info("webhook: replay queued", "replay", r.ID, "webhook", r.WebhookID)
		return nil
	}
	return err
}
