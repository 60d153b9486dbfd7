package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
	"github.com/usersd/usersd/internal/positive"
)

// WaiterAppName is the application_name of a Waiter's listening connection.
const WaiterAppName = "usersd waiter"

const (
	defaultFallback  = time.Second
	defaultReconnect = time.Second
)

// Waiter gives reads their writes: it knows every projection's checkpoint,
// kept current by the notifications runners send when they commit, and lets
// a read wait until the projections it uses have passed a position.
//
// It listens with a connection of its own. When that connection drops, it
// reconnects and re-reads the checkpoints (notifications sent meanwhile are
// lost). While anyone waits, it also re-reads them every second through the
// pool, so a notification lost any other way delays a read, not fails it.
type Waiter struct {
	pool       *pgxpool.Pool
	connConfig *pgx.ConnConfig
	log        *slog.Logger
	fallback   time.Duration
	reconnect  time.Duration

	waiting atomic.Int64 // WaitFor calls in progress
	wg      sync.WaitGroup

	// listening is nil while the listener is connected, else why not
	// (see Health).
	listening atomic.Pointer[error]

	mu          sync.Mutex
	checkpoints map[string]domain.Position
	// waits are the WaitFor calls still behind. A move of a checkpoint
	// closes the done channels of those it satisfies, and only those: with
	// hundreds of reads waiting, waking them all on every move of any
	// projection to look again was a thundering herd on mu. A wait is
	// checked and registered in one critical section, so a move after the
	// check finds it registered.
	waits map[*wait]struct{}
}

// wait is one WaitFor call behind its position.
type wait struct {
	pos   domain.Position
	names []string
	done  chan struct{} // closed once every named projection has passed pos
}

// WaiterOption configures a Waiter.
type WaiterOption func(*Waiter)

// WithWaiterLogger sets where the waiter reports lost connections. Default
// slog.Default().
func WithWaiterLogger(l *slog.Logger) WaiterOption { return func(w *Waiter) { w.log = l } }

// WithFallbackInterval sets how often checkpoints are re-read while someone
// waits, in case a notification was lost. Default one second.
func WithFallbackInterval(d time.Duration) WaiterOption {
	return func(w *Waiter) { w.fallback = positive.Or(d, w.fallback) }
}

// WithReconnectDelay sets the pause before reconnecting the listener.
// Default one second.
func WithReconnectDelay(d time.Duration) WaiterOption {
	return func(w *Waiter) { w.reconnect = positive.Or(d, w.reconnect) }
}

// NewWaiter returns a Waiter reading checkpoints through pool and listening
// with connConfig (nil: pool's settings). Call Start before WaitFor.
func NewWaiter(pool *pgxpool.Pool, connConfig *pgx.ConnConfig, opts ...WaiterOption) *Waiter {
	if pool == nil {
		panic("projections: NewWaiter needs a pool")
	}
	if connConfig == nil {
		connConfig = pool.Config().ConnConfig
	}
	w := &Waiter{
		pool: pool, connConfig: connConfig, log: slog.Default(),
		fallback: defaultFallback, reconnect: defaultReconnect,
		checkpoints: map[string]domain.Position{},
		waits:       map[*wait]struct{}{},
	}
	for _, o := range opts {
		o(w)
	}
	w.setListening(errWaiterNotStarted)
	return w
}

var errWaiterNotStarted = errors.New("not started")

// Health answers nil while the waiter listens for checkpoint moves, and
// otherwise why it does not (its connection was lost and it is
// reconnecting, or it is not running). While it does not listen, reads
// still see moves, through the re-reads every fallback interval, only
// later.
func (w *Waiter) Health() error {
	if err := w.listening.Load(); err != nil {
		return *err
	}
	return nil
}

func (w *Waiter) setListening(err error) {
	if err == nil {
		w.listening.Store(nil)
		return
	}
	w.listening.Store(&err)
}

// Start listens and loads the checkpoints. It returns once both are done,
// or with the error that prevented them, so a misconfigured service fails
// at start. The waiter then runs until ctx ends; Wait waits for that.
//
// A service stops its waiter only after its HTTP server has drained: a read
// accepted before the stop still waits for a position that this or another
// replica's runners make visible, and the waiter must keep following their
// notifications until the read has its answer.
func (w *Waiter) Start(ctx context.Context) error {
	conn, err := w.listen(ctx)
	if err != nil {
		return fmt.Errorf("projections waiter: %w", err)
	}
	w.setListening(nil)
	w.wg.Add(2)
	go w.listenLoop(ctx, conn)
	go w.fallbackLoop(ctx)
	return nil
}

// Wait returns when the goroutines Start began have ended.
func (w *Waiter) Wait() { w.wg.Wait() }

// WaitFor returns nil as soon as every named projection's checkpoint is at
// or after pos. Otherwise it waits for checkpoints to move, and when ctx
// ends returns an error wrapping ctx.Err() that names a lagging projection.
// The zero pos, or no names, is reached at once.
func (w *Waiter) WaitFor(ctx context.Context, pos domain.Position, names ...string) error {
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	wt, lagging := w.register(pos, names)
	if wt == nil {
		return nil
	}
	w.log.DebugContext(ctx, "projections waiter: a read waits for a projection", "projection", lagging, "position", pos.String())
	select {
	case <-wt.done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	delete(w.waits, wt)
	lagging = w.lagging(pos, names)
	cp := w.checkpoints[lagging]
	w.mu.Unlock()
	if lagging == "" { // reached as ctx ended
		return nil
	}
	return fmt.Errorf("projection %s at %s, waiting for %s: %w", lagging, cp, pos, ctx.Err())
}

// register answers nil if every projection in names is at or after pos,
// and otherwise a registered wait and the first projection behind.
func (w *Waiter) register(pos domain.Position, names []string) (*wait, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lagging := w.lagging(pos, names)
	if lagging == "" {
		return nil, ""
	}
	wt := &wait{pos: pos, names: names, done: make(chan struct{})}
	w.waits[wt] = struct{}{}
	return wt, lagging
}

// lagging answers the first projection in names behind pos ("" if none).
// The caller holds mu.
func (w *Waiter) lagging(pos domain.Position, names []string) string {
	if pos.IsZero() {
		return ""
	}
	for _, n := range names {
		if cp := w.checkpoints[n]; cp.Less(pos) {
			return n
		}
	}
	return ""
}

// Checkpoint returns the last known checkpoint of a projection; ok is false
// if it has none yet.
func (w *Waiter) Checkpoint(name string) (pos domain.Position, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pos, ok = w.checkpoints[name]
	return pos, ok
}

// advance records a checkpoint and wakes the waiters if it moved forward.
// Checkpoints never move back (a rebuild swaps in one at least as far), and
// keeping the furthest one makes the order of notifications and re-reads
// irrelevant.
func (w *Waiter) advance(name string, pos domain.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cp, ok := w.checkpoints[name]; ok && !cp.Less(pos) {
		return
	}
	w.checkpoints[name] = pos
	for wt := range w.waits {
		// A wait was behind on one of its own projections: only their
		// moves can end it.
		if slices.Contains(wt.names, name) && w.lagging(wt.pos, wt.names) == "" {
			close(wt.done)
			delete(w.waits, wt)
		}
	}
}

// listen connects, LISTENs and then loads the checkpoints: in that order, so
// a move committed after the load is always notified.
func (w *Waiter) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := connect(ctx, w.connConfig, WaiterAppName)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := w.load(ctx, conn); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// listenLoop receives notifications until ctx ends, reconnecting whenever
// the connection fails.
func (w *Waiter) listenLoop(ctx context.Context, conn *pgx.Conn) {
	defer w.wg.Done()
	defer w.setListening(errors.New("stopped"))
	for {
		err := w.receive(ctx, conn)
		closeConn(conn)
		if ctx.Err() != nil {
			return
		}
		w.setListening(fmt.Errorf("listener lost: %w", err))
		w.log.Warn("projections waiter: listener lost; reconnecting", "err", err, "retry_in", w.reconnect)
		if conn = w.reconnectLoop(ctx); conn == nil {
			return
		}
	}
}

// reconnectLoop listens again, retrying every reconnect delay; nil when ctx
// ended first.
func (w *Waiter) reconnectLoop(ctx context.Context) *pgx.Conn {
	for {
		if pause.For(ctx, w.reconnect) != nil {
			return nil
		}
		conn, err := w.listen(ctx)
		if err == nil {
			w.setListening(nil)
			w.log.Info("projections waiter: listening again")
			return conn
		}
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("projections waiter: reconnect", "err", err)
	}
}

// receive applies notifications until the connection fails or ctx ends.
func (w *Waiter) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		name, pos, err := parseNotification(n.Payload)
		if err != nil {
			w.log.Warn("projections waiter: ignoring a notification", "err", err)
			continue
		}
		w.advance(name, pos)
	}
}

// fallbackLoop re-reads the checkpoints while anyone waits, in case a
// notification was lost (sent while the listener reconnected).
func (w *Waiter) fallbackLoop(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(w.fallback)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.waiting.Load() == 0 {
			continue
		}
		if err := w.load(ctx, w.pool); err != nil && ctx.Err() == nil {
			w.log.Warn("projections waiter: re-read checkpoints", "err", err)
		}
	}
}

// rowQuerier is what both a connection and the pool offer.
type rowQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// load reads every checkpoint.
func (w *Waiter) load(ctx context.Context, q rowQuerier) error {
	rows, err := q.Query(ctx, `SELECT name, commit_position, prepare_position FROM projection_checkpoints`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	var (
		name string
		c, p int64
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &c, &p}, func() error {
		w.advance(name, domain.Position{Commit: uint64(c), Prepare: uint64(p)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	return nil
}
