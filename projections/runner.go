package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
	"github.com/usersd/usersd/internal/positive"
)

const (
	defaultBatchSize  = 500
	defaultLockRetry  = 500 * time.Millisecond
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 10 * time.Second
	defaultConnCheck  = 2 * time.Second
	closeTimeout      = 5 * time.Second
)

// errFenced aborts a batch whose checkpoint moved under the runner: another
// writer (a rebuild's swap, or a runner that should not exist) got there
// first, so this batch's view of the read model is stale.
var errFenced = errors.New("checkpoint moved by another writer")

// RunnerOptions tune a Runner. The zero value is usable.
type RunnerOptions struct {
	// BatchSize caps the events applied in one transaction. Default 500.
	BatchSize int
	// Logger receives the failures the runner recovers from. Default
	// slog.Default().
	Logger *slog.Logger
	// OnProgress, if set, is called after every committed batch and on
	// reaching the end of the history, on the runner's goroutine: it must
	// return quickly. The service turns it into lag metrics.
	OnProgress func(Progress)
	// LockRetry is how often a replica that does not hold the projection's
	// lock tries again. Default 500 ms.
	LockRetry time.Duration
	// MinBackoff and MaxBackoff bound the wait before following the source
	// again after a failure; it doubles from MinBackoff after each failure
	// in a row. Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// ConnCheck is how often the lock's connection is pinged while no
	// batch uses it, so that a connection lost while idle (a database
	// restart) is noticed and the lock taken again before the next event
	// needs it (Health pings it too). Default 2 s.
	ConnCheck time.Duration
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	o.BatchSize = positive.Or(o.BatchSize, defaultBatchSize)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.LockRetry = positive.Or(o.LockRetry, defaultLockRetry)
	o.MinBackoff = positive.Or(o.MinBackoff, defaultMinBackoff)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(defaultMaxBackoff, o.MinBackoff)
	}
	o.ConnCheck = positive.Or(o.ConnCheck, defaultConnCheck)
	return o
}

// Progress is what a runner reports after each batch.
type Progress struct {
	Name string
	// Checkpoint is the committed position: the read model holds every
	// event up to it.
	Checkpoint domain.Position
	// LastEventAt is when the last event this runner applied occurred
	// (Metadata.OccurredAt); zero until it applies one. With CaughtUp false,
	// now minus LastEventAt is how far behind the read model is.
	LastEventAt time.Time
	// CaughtUp is true when the runner has applied everything stored.
	CaughtUp bool
	// Applied is the number of events this batch applied (zero when only
	// reporting that the runner is caught up): add it to a counter.
	Applied int
}

// Runner keeps one projection up to date. Any number of replicas may run a
// Runner for the same projection: one at a time holds its advisory lock and
// applies events, the others wait to take over.
type Runner struct {
	pool *pgxpool.Pool
	p    Projection
	src  Source
	opts RunnerOptions
	log  *slog.Logger

	lastEventAt time.Time // touched only by Run's goroutine

	healthMu sync.Mutex
	health   error                           // see Health
	check    func(ctx context.Context) error // pings the lock's connection while following
}

// Why a runner is not working, as Health answers it.
var (
	errNotRunning  = errors.New("not running")
	errNoRoundTrip = errors.New("took the lock; no batch applied or caught up since")
)

// NewRunner returns a runner feeding p from src into the database of pool.
// It panics on nil arguments, which are programming errors.
func NewRunner(pool *pgxpool.Pool, p Projection, src Source, opts RunnerOptions) *Runner {
	if pool == nil || p == nil || src == nil {
		panic("projections: NewRunner needs a pool, a projection and a source")
	}
	opts = opts.withDefaults()
	return &Runner{
		pool: pool, p: p, src: src, opts: opts,
		log:    opts.Logger.With("projection", p.Name()),
		health: errNotRunning,
	}
}

// Health answers nil while the runner works, and otherwise why not. It
// works when it stands by (its database answered that another replica holds
// the projection's lock), or when it holds the lock and, since its last
// failure or since it took the lock, has committed a batch or reached the
// end of the history (a round trip through the source and the database
// both), and its lock's connection answers a ping now, if no batch is
// using it. A ping of the pool alone proves none of this: after an outage,
// a runner is not healthy again until it has taken its lock anew and
// followed the source (readiness, /readyz). A failed ping makes the runner
// take the lock again at once.
func (r *Runner) Health(ctx context.Context) error {
	r.healthMu.Lock()
	err, check := r.health, r.check
	r.healthMu.Unlock()
	if err != nil || check == nil {
		return err
	}
	return check(ctx)
}

func (r *Runner) setHealth(err error) {
	r.healthMu.Lock()
	r.health = err
	r.healthMu.Unlock()
}

func (r *Runner) setCheck(check func(context.Context) error) {
	r.healthMu.Lock()
	r.check = check
	r.healthMu.Unlock()
}

// Run applies events until ctx ends, then returns ctx.Err(). Every other
// failure is logged and retried, so Run never gives up while ctx lasts. Call
// it once at a time per Runner.
//
// Run holds the projection's lock on a connection of its own and writes
// every batch through that same connection: if the connection dies, the
// lock goes with it and so does this runner's ability to write, so two
// runners can never both apply. The checkpoint fence in each batch covers
// the rest (a rebuild's swap).
func (r *Runner) Run(ctx context.Context) error {
	defer r.setHealth(errNotRunning)
	for {
		conn, err := r.acquire(ctx)
		if err != nil {
			return err
		}
		r.log.Info("projection: took the lock; running")
		r.lead(ctx, conn)
		closeConn(conn)
		if err := ctx.Err(); err != nil {
			return err
		}
		r.log.Warn("projection: lost the lock connection; taking the lock again")
	}
}

// acquire returns a connection holding the projection's lock, trying every
// LockRetry while another replica holds it; it fails only when ctx ends.
// A standby keeps its connection between tries rather than reconnecting.
func (r *Runner) acquire(ctx context.Context) (*pgx.Conn, error) {
	var conn *pgx.Conn
	b := r.newBackoff()
	waiting := false
	for {
		ok, err := r.tryLock(ctx, &conn)
		switch {
		case ok:
			r.setHealth(errNoRoundTrip)
			return conn, nil
		case ctx.Err() != nil:
			if conn != nil {
				closeConn(conn)
			}
			return nil, ctx.Err()
		case err != nil:
			// The database is unreachable: back off rather than retrying
			// every LockRetry.
			r.setHealth(err)
			r.log.Warn("projection: take the lock", "err", err, "retry_in", b.next)
			if err := b.wait(ctx); err != nil {
				return nil, err
			}
			continue
		case !waiting:
			r.log.Info("projection: another replica holds the lock; standing by")
			waiting = true
		}
		r.setHealth(nil) // standing by is working
		b.reset()
		if err := pause.For(ctx, r.opts.LockRetry); err != nil {
			closeConn(conn)
			return nil, err
		}
	}
}

// tryLock tries the lock once on *conn, connecting first if *conn is nil.
// On an error it closes the connection and sets *conn to nil.
func (r *Runner) tryLock(ctx context.Context, conn **pgx.Conn) (bool, error) {
	if *conn == nil {
		c, err := connect(ctx, r.pool.Config().ConnConfig, AppName("projection", r.p.Name()))
		if err != nil {
			return false, err
		}
		*conn = c
	}
	ok, err := tryAdvisoryLock(ctx, *conn, advisoryKey("projection", r.p.Name()))
	if err != nil {
		closeConn(*conn)
		*conn = nil
	}
	return ok, err
}

// lead runs the projection while conn holds its lock: it follows the source
// from the checkpoint and, after a failure, backs off and follows again from
// the checkpoint last committed. It returns when ctx ends or conn is lost.
func (r *Runner) lead(ctx context.Context, conn *pgx.Conn) {
	b := r.newBackoff()
	for {
		progressed, err := r.follow(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			b.reset()
		}
		r.setHealth(err)
		if !alive(ctx, conn) {
			r.log.Warn("projection: stopped", "err", err)
			return
		}
		if errors.Is(err, errFenced) {
			// Expected after a rebuild swapped the tables in.
			r.log.Info("projection: checkpoint moved by another writer; following from the new one")
		} else {
			r.log.Warn("projection: failed; following again from the checkpoint", "err", err, "retry_in", b.next)
		}
		if err := b.wait(ctx); err != nil {
			return
		}
	}
}

// alive reports whether conn still holds its session, and with it the lock.
func alive(ctx context.Context, conn *pgx.Conn) bool {
	if conn.IsClosed() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	return conn.Ping(ctx) == nil
}

// follow reads the checkpoint and subscribes from it until the subscription
// or a batch fails, or the lock's connection is found dead while idle (see
// checkConn). progressed tells whether any batch committed.
func (r *Runner) follow(ctx context.Context, conn *pgx.Conn) (progressed bool, err error) {
	from, _, err := readCheckpoint(ctx, conn, r.p.Name(), false)
	if err != nil {
		return false, err
	}
	subCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var connMu sync.Mutex // batches and the idle checks take turns on conn
	check := func(ctx context.Context) error {
		if !connMu.TryLock() {
			return nil // a batch is using it: that is check enough
		}
		defer connMu.Unlock()
		// Never the caller's deadline: a ping cut short closes the
		// connection, and the lock with it.
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer pcancel()
		if err := conn.Ping(pctx); err != nil {
			err = fmt.Errorf("the lock's connection: %w", err)
			r.setHealth(err)
			cancel(err) // follow again, on a new connection
			return err
		}
		return nil
	}
	r.setCheck(check)
	defer r.setCheck(nil)
	stopWatch := r.watch(subCtx, check)
	defer stopWatch()
	err = r.src.Subscribe(subCtx, from, r.opts.BatchSize, func(ctx context.Context, b Batch) error {
		connMu.Lock()
		defer connMu.Unlock()
		if len(b.Events) == 0 {
			if b.CaughtUp {
				r.setHealth(nil)
				r.report(from, true, 0)
			}
			return nil
		}
		if err := r.apply(ctx, conn, from, b); err != nil {
			return err
		}
		from, progressed = b.Checkpoint, true
		r.setHealth(nil)
		r.lastEventAt = b.Events[len(b.Events)-1].Metadata.OccurredAt
		r.report(from, b.CaughtUp, len(b.Events))
		return nil
	})
	if ctx.Err() == nil && subCtx.Err() != nil {
		err = context.Cause(subCtx) // check found the connection dead
	}
	if err == nil {
		err = errors.New("subscription ended")
	}
	return progressed, err
}

// watch runs check every ConnCheck until ctx ends or check fails: an idle
// runner would otherwise learn only at the next event that its lock went
// with its connection. It answers a function that stops the watch and
// waits for it.
func (r *Runner) watch(ctx context.Context, check func(context.Context) error) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.opts.ConnCheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if check(ctx) != nil {
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// apply writes one batch and moves the checkpoint from from to the batch's,
// in one transaction on the lock's connection.
func (r *Runner) apply(ctx context.Context, conn *pgx.Conn, from domain.Position, b Batch) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin batch: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if err := useSchema(ctx, tx, LiveSchema); err != nil {
		return err
	}
	if err := r.p.Apply(ctx, tx, b.Events); err != nil {
		return fmt.Errorf("apply %d events after %s: %w", len(b.Events), from, err)
	}
	moved, err := moveCheckpoint(ctx, tx, r.p.Name(), from, b.Checkpoint)
	if err != nil {
		return err
	}
	if !moved {
		return errFenced
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit batch up to %s: %w", b.Checkpoint, err)
	}
	return nil
}

func (r *Runner) report(cp domain.Position, caughtUp bool, applied int) {
	if r.opts.OnProgress == nil {
		return
	}
	r.opts.OnProgress(Progress{
		Name: r.p.Name(), Checkpoint: cp, LastEventAt: r.lastEventAt,
		CaughtUp: caughtUp, Applied: applied,
	})
}

func (r *Runner) newBackoff() *backoff {
	return &backoff{min: r.opts.MinBackoff, max: r.opts.MaxBackoff, next: r.opts.MinBackoff}
}

// backoff is an exponential delay between retries.
type backoff struct{ min, max, next time.Duration }

func (b *backoff) reset() { b.next = b.min }

// wait sleeps for the current delay and doubles the next one.
func (b *backoff) wait(ctx context.Context) error {
	d := b.next
	b.next = min(2*d, b.max)
	return pause.For(ctx, d)
}
