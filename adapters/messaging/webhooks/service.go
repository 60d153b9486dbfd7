// Package webhooks delivers a workspace's events to the URLs its Admins
// subscribed (docs/integrations.md, "Webhooks"), over watermill like the
// invitation e-mails:
//
//   - Dispatcher (queue.go), a projection: applies each batch of events to
//     the webhooks' state (projections/webhooks) and queues their
//     deliveries in the same transaction as its checkpoint;
//   - the sender (sender.go): a watermill router, a subscriber per
//     partition of the queue, which POSTs each delivery signed as Standard
//     Webhooks say (signing.go), retries it with exponential backoff, and
//     keeps it in the poison queue after the last try;
//   - the replays (replay.go), which queue the events of a replay asked for;
//   - Guard (guard.go), which keeps webhooks off private addresses (SSRF),
//     at subscription and at every connection.
package webhooks

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/projections"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// SenderLock names the advisory lock of the replica that sends.
const SenderLock = "usersd webhook sender"

// DefaultRetryPolicy tries a delivery 8 times over about two minutes (1 s,
// doubling, at most a minute apart), then gives up.
func DefaultRetryPolicy() messaging.RetryPolicy {
	return messaging.RetryPolicy{MaxRetries: 7, InitialInterval: time.Second, MaxInterval: time.Minute}
}

// Options tune the webhooks.
type Options struct {
	Logger *slog.Logger
	// AllowPrivate lets deliveries reach private, loopback and link-local
	// addresses (USERSD_WEBHOOK_ALLOW_PRIVATE=true).
	AllowPrivate bool
	// Retry is how a delivery is retried; default DefaultRetryPolicy.
	Retry messaging.RetryPolicy
	// Timeout bounds one attempt, connection to answer; default 10 s.
	Timeout time.Duration
	// PollInterval is how soon a partition that found no delivery looks
	// again; it doubles, up to IdlePollInterval, while it finds none.
	// Defaults 100 ms and 1 s.
	PollInterval, IdlePollInterval time.Duration
	// TLS is the configuration of https deliveries; nil trusts the
	// system's roots.
	TLS *tls.Config
	// Runner tunes the dispatcher's projection runner.
	Runner projections.RunnerOptions
	// Now is the clock of the signatures and the log; default time.Now.
	Now func() time.Time
}

// Service runs the webhooks: the dispatcher and, on one replica at a time,
// the sender with the replays and the log's retention. Each part can run
// alone (RunDispatcher, RunSender); Run runs both.
type Service struct {
	pool       *pgxpool.Pool
	src        projections.Source
	opts       Options
	log        *slog.Logger
	sender     *sender
	dispatcher *projections.Runner
}

// New returns the service. open opens the events' personal values and
// secrets answers the webhooks' secrets.
func New(pool *pgxpool.Pool, src projections.Source, secrets Secrets, open Opener, opts Options) (*Service, error) {
	if pool == nil || src == nil || secrets == nil || open == nil {
		return nil, errors.New("webhooks: New needs a pool, a source, the secrets and an opener")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Retry == (messaging.RetryPolicy{}) {
		opts.Retry = DefaultRetryPolicy()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.IdlePollInterval < opts.PollInterval {
		opts.IdlePollInterval = max(time.Second, opts.PollInterval)
	}
	if opts.Runner.Logger == nil {
		opts.Runner.Logger = opts.Logger
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger.With("component", "webhooks")
	hooks := projwebhooks.NewQueries(pool)
	return &Service{
		pool: pool, src: src, opts: opts, log: log,
		sender: &sender{
			pool: pool, open: open, now: opts.Now, log: log, attempts: newAttemptLog(pool),
			targets: &targets{hooks: hooks, secrets: secrets, now: opts.Now, byID: make(map[uuid.UUID]target)},
			client:  newClient(Guard{AllowPrivate: opts.AllowPrivate}, opts.Timeout, opts.TLS),
		},
		dispatcher: projections.NewRunner(pool, Dispatcher{}, src, opts.Runner),
	}, nil
}

// Health answers nil while the dispatcher works (projections.Runner.Health),
// else why not: readiness counts it among the projections this replica
// holds.
func (s *Service) Health(ctx context.Context) error { return s.dispatcher.Health(ctx) }

// Run runs the dispatcher and the sender until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return messaging.RunAll(ctx, s.RunDispatcher, func(ctx context.Context) error {
		return messaging.KeepRunning(ctx, s.log, "webhook sender", s.RunSender)
	})
}

// RunDispatcher runs the dispatcher: one replica at a time (the runner's
// advisory lock) queues the deliveries of new events.
func (s *Service) RunDispatcher(ctx context.Context) error { return s.dispatcher.Run(ctx) }

// RunSender delivers and replays until ctx ends, while this replica holds
// the sender lock; the others stand by.
func (s *Service) RunSender(ctx context.Context) error {
	return messaging.WhileHolding(ctx, s.pool, SenderLock, s.log, func(held context.Context) error {
		var wg sync.WaitGroup
		partsCtx, stop := context.WithCancel(held)
		defer stop()
		wg.Go(func() { s.replayUntil(partsCtx) })
		err := s.send(held)
		stop()
		wg.Wait()
		if err != nil {
			return err
		}
		return held.Err()
	})
}

// The operational tables of the webhooks (docs/retention.md).
var (
	logTable    = messaging.OperationalTable{Name: "webhook_deliveries", TimeColumn: "created_at"}
	queueTable  = messaging.OperationalTable{Name: "watermill_" + Topic, TimeColumn: "created_at"}
	poisonTable = messaging.OperationalTable{Name: "watermill_" + PoisonTopic, TimeColumn: "created_at"}
)

// Kinds of the webhooks' rows the retention sweeper prunes.
const (
	KindLog    = "webhook_deliveries"
	KindPoison = "webhook_poison"
	KindQueue  = "webhook_queue"
)

// RetentionTasks are the webhooks' tasks of the retention sweeper: the
// log's finished deliveries (delivered or failed) whose last attempt is
// older than deliveries, the poison queue's messages older than poison;
// the queue, whose rows go when they are handled, only shows its size.
// Nothing a guarantee needs goes: a pending delivery stays in the log,
// a queued one in the queue.
func RetentionTasks(deliveries, poison time.Duration) []messaging.RetentionTask {
	return []messaging.RetentionTask{
		{Kind: KindLog, Tables: []messaging.OperationalTable{logTable},
			Prune: messaging.PruneOlderThan(logTable.Name, "delivery_id", "last_attempt_at", "status <> 'pending'", deliveries)},
		{Kind: KindPoison, Tables: []messaging.OperationalTable{poisonTable},
			Prune: messaging.PruneOlderThan(poisonTable.Name, "offset", "created_at", "", poison)},
		{Kind: KindQueue, Tables: []messaging.OperationalTable{queueTable},
			Prune: func(context.Context, *pgxpool.Pool, int) (int64, error) { return 0, nil }},
	}
}
