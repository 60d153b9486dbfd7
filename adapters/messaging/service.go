package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/pause"
	"github.com/usersd/usersd/projections"
)

// RetryPolicy is how the router retries a transient failure: after
// InitialInterval, doubling up to MaxInterval, MaxRetries times; then the
// attempt is recorded as failed and the message goes to the poison queue.
type RetryPolicy struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

// Middleware is watermill's Retry middleware under p: exponential backoff
// (doubling, with a fifth of jitter), no retry of a Permanent failure nor
// of a stop (a cancelled context), retries logged through log.
func (p RetryPolicy) Middleware(log watermill.LoggerAdapter) message.HandlerMiddleware {
	return middleware.Retry{
		MaxRetries: p.MaxRetries, InitialInterval: p.InitialInterval,
		MaxInterval: p.MaxInterval, Multiplier: 2, RandomizationFactor: 0.2,
		ShouldRetry: func(r middleware.RetryParams) bool { return !IsPermanent(r.Err) && !errors.Is(r.Err, context.Canceled) },
		Logger:      log,
	}.Middleware
}

// DefaultRetryPolicy tries 6 times over about a minute and a half.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 5, InitialInterval: 2 * time.Second, MaxInterval: 40 * time.Second}
}

// Options tune the e-mail service. PublicURL is required.
type Options struct {
	// PublicURL is the base of links (USERSD_PUBLIC_URL).
	PublicURL string
	Logger    *slog.Logger
	Retry     RetryPolicy
	// PollInterval is how often an idle mailer looks for messages.
	// Default 100 ms.
	PollInterval time.Duration
	// ExpiryMaxSleep bounds the wait between expiry sweeps. Default 1 min.
	ExpiryMaxSleep time.Duration
	// Runner tunes the process manager's projection runner.
	Runner projections.RunnerOptions
	// Clock tells which invitations are due (expiry) or dead already (the
	// outbox mails none); default commands.SystemClock.
	Clock commands.Clock
}

// Service runs the invitation e-mail pipeline: the process manager (outbox),
// the mailer (with its delivery log) and the expiry scheduler. Each part can
// run alone (RunOutbox, RunMailer, RunExpiry) for scale-out; Run runs all.
type Service struct {
	pool   *pgxpool.Pool
	app    commands.Application
	src    projections.Source
	sender commands.EmailSender
	opts   Options
	log    *slog.Logger

	outbox *projections.Runner
}

// New checks the options and returns the service, which composes e-mails
// and records what became of them with app.
func New(pool *pgxpool.Pool, app commands.Application, src projections.Source, sender commands.EmailSender, opts Options) (*Service, error) {
	if pool == nil || src == nil || sender == nil || app == (commands.Application{}) {
		return nil, errors.New("messaging: New needs a pool, the application, a source and a sender")
	}
	if opts.PublicURL == "" {
		return nil, errors.New("messaging: no public URL for links")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Retry.MaxRetries == 0 && opts.Retry.InitialInterval == 0 {
		opts.Retry = DefaultRetryPolicy()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	if opts.Runner.Logger == nil {
		opts.Runner.Logger = opts.Logger
	}
	if opts.Clock == nil {
		opts.Clock = commands.SystemClock{}
	}
	log := opts.Logger.With("component", "mail")
	return &Service{
		pool: pool, app: app, src: src, sender: sender, opts: opts, log: log,
		outbox: projections.NewRunner(pool, NewOutbox(opts.Clock), src, opts.Runner),
	}, nil
}

// Health answers nil while the process manager's projection runner works
// (projections.Runner.Health), else why not: readiness counts it among the
// projections this replica holds.
func (s *Service) Health(ctx context.Context) error { return s.outbox.Health(ctx) }

// Run runs every part until ctx ends and returns when all have stopped.
func (s *Service) Run(ctx context.Context) error {
	return RunAll(ctx, s.RunOutbox, s.keepMailing, s.RunExpiry)
}

// RunAll runs every part at once until ctx ends, and when all have
// stopped answers their failures, the end of ctx not counted.
func RunAll(ctx context.Context, parts ...func(context.Context) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, run := range parts {
		wg.Go(func() { errs[i] = run(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// keepMailing runs the mailer again after a failure (the database
// unreachable at start, say), waiting longer each time, until ctx ends.
func (s *Service) keepMailing(ctx context.Context) error {
	return KeepRunning(ctx, s.log, "mailer", s.RunMailer)
}

// KeepRunning runs run again after it fails (the database unreachable at
// start, say), waiting longer each time (1 s, doubling up to a minute),
// until ctx ends; what names it in the log.
func KeepRunning(ctx context.Context, log *slog.Logger, what string, run func(context.Context) error) error {
	wait := time.Second
	for {
		err := run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("the "+what+" stopped; starting it again", "err", err, "retry_in", wait)
		if err := pause.For(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, time.Minute)
	}
}

// RunOutbox runs the process manager: one replica at a time (the runner's
// advisory lock) publishes the e-mails of new invitations and resends.
// Call it once at a time (Run does).
func (s *Service) RunOutbox(ctx context.Context) error {
	return s.outbox.Run(ctx)
}

// RunExpiry runs the expiry scheduler.
func (s *Service) RunExpiry(ctx context.Context) error {
	return NewExpiry(s.pool, s.app.Commands.ExpireInvitations, s.opts.Clock, s.log, s.opts.ExpiryMaxSleep).Run(ctx)
}

// RunMailer consumes the outbox and records outcomes until ctx ends. One
// replica at a time mails (an advisory lock, see offsetsAdapter); the
// others stand by to take over.
func (s *Service) RunMailer(ctx context.Context) error {
	return WhileHolding(ctx, s.pool, MailerLock, s.log, s.mail)
}

// WhileHolding runs run while this replica holds the advisory lock named
// name (HoldLock), waiting for it while another replica does; run's
// context ends if the lock is lost, which is then the error.
func WhileHolding(ctx context.Context, pool *pgxpool.Pool, name string, log *slog.Logger, run func(context.Context) error) error {
	held, release, err := HoldLock(ctx, pool, name, func() {
		log.Info("another replica holds the lock; standing by", "lock", name)
	})
	if err != nil {
		return err
	}
	defer release()
	log.Info("took the lock", "lock", name)
	err = run(held)
	if ctx.Err() == nil && held.Err() != nil {
		return fmt.Errorf("lost the connection of the lock %q", name)
	}
	return err
}
