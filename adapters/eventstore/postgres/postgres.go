// Package postgres is the PostgreSQL event store: streams with per-stream
// revisions, a global order that subscribers follow without ever skipping an
// event, and idempotent appends by event id. The schema and the append
// function live in migrations/00001_event_store.sql.
//
// The global order is (writing transaction id, sequence number). Subscribers
// read only rows of transactions older than the oldest event writer still
// running (a transaction holding the writers' marker, migration 00021), so
// no transaction can commit an event before what they have already read.
// The price: an event becomes readable when every event-writing transaction
// that took its id before it has ended, so a long-running one delays
// subscriptions (never appends); transactions writing no events do not.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/internal/positive"
)

const (
	// notifyChannel wakes subscriptions in other processes after appends.
	notifyChannel = "usersd_events"

	defaultBatchSize    = 500
	defaultPollInterval = time.Second
	// notifyInterval spaces out NOTIFYs: other processes learn of appends
	// at most this late.
	notifyInterval = 5 * time.Millisecond
	// listenRetry is how long the listener waits before reconnecting; the
	// poll covers what is missed meanwhile.
	listenRetry = time.Second
)

var _ eventstore.Store = (*Store)(nil)

// Store is an eventstore.Store in PostgreSQL. Close it when done: it runs a
// goroutine that notifies subscribers and, once something subscribes, one
// that listens for other processes' appends.
type Store struct {
	pool         *pgxpool.Pool
	connConfig   *pgx.ConnConfig
	log          *slog.Logger
	pollInterval time.Duration
	// id is the payload of this store's notifications, so its listener can
	// ignore them: its own subscribers were already woken in-process.
	id        string
	notifySQL string

	// appended receives a token after each append; its buffer of one
	// coalesces the appends made while a notification is being sent.
	appended chan struct{}
	wake     broadcast
	seen     *seenRevisions
	reads    readPool
	// warnUnmarked says once that subscriptions read with the old horizon.
	warnUnmarked sync.Once
	// appends and starts coalesce concurrent writes (group commit), up to
	// inFlight statements of each at once.
	inFlight int
	appends  *grouper[appendItem, appendRow]
	starts   *grouper[startItem, []bool]

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	listening bool
	closed    bool
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets where the store reports errors it can only log (a failed
// notification, a lost listener connection). The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithPollInterval sets how often a caught-up subscription reads even when
// nothing woke it: the fallback for notifications lost while reconnecting.
// The default is one second; zero or less keeps it.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) { s.pollInterval = positive.Or(d, s.pollInterval) }
}

// New returns a Store on pool, whose database must be migrated. The
// listener connects with pool's connection settings.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	if pool == nil {
		panic("eventstore/postgres: nil pool")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		pool:         pool,
		connConfig:   pool.Config().ConnConfig,
		log:          slog.Default(),
		pollInterval: defaultPollInterval,
		id:           randomID(),
		appended:     make(chan struct{}, 1),
		seen:         newSeenRevisions(),
		wake:         broadcast{ch: make(chan struct{})},
		ctx:          ctx,
		cancel:       cancel,
	}
	s.inFlight = groupsInFlight(pool.Config().MaxConns)
	s.appends, s.starts = s.newAppendGrouper(), s.newStartGrouper()
	for _, o := range opts {
		o(s)
	}
	// NOTIFY gives its transaction an id, so committing it waits for a WAL
	// flush like an append, doubling a lone writer's flushes. Notifications
	// are not durable anyway (and the events were flushed before), so skip
	// the wait. Two statements without parameters go as one simple query,
	// one implicit transaction; channel and id need no quoting.
	s.notifySQL = "SET LOCAL synchronous_commit = off; SELECT pg_notify('" + notifyChannel + "', '" + s.id + "')"
	s.wg.Add(1)
	go s.notify()
	return s
}

// Close stops the store's goroutines and waits for them. Appends and reads
// still work afterwards, but subscriptions are only woken by their poll.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.reads.close()
}

// appendedOne tells the notifier about an append without ever blocking the
// writer: if a token is already waiting, that notification covers this one.
func (s *Store) appendedOne() {
	select {
	case s.appended <- struct{}{}:
	default:
	}
}

// notify wakes this process's subscriptions directly and other processes'
// through NOTIFY. It runs outside the appending transactions on purpose:
// NOTIFY takes a database-wide lock held until commit, which would serialise
// every writer. Local wake-ups are immediate; NOTIFY is sent at most once per
// notifyInterval, as under load each one is a transaction of its own.
func (s *Store) notify() {
	defer s.wg.Done()
	var (
		due  <-chan time.Time // set while NOTIFY is being held back
		held bool             // appends arrived while held back
	)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.appended:
			s.wake.signal()
			if due != nil {
				held = true
				continue
			}
		case <-due:
			if !held {
				due = nil
				continue
			}
		}
		s.notifyOthers()
		due, held = time.After(notifyInterval), false
	}
}

func (s *Store) notifyOthers() {
	if _, err := s.pool.Exec(s.ctx, s.notifySQL); err != nil && s.ctx.Err() == nil {
		s.log.Warn("event store: notify other processes", "err", err)
	}
}

// listen starts, once, the listener shared by all subscriptions of the store.
// It reconnects by itself; Close stops it.
func (s *Store) listen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening || s.closed {
		return
	}
	s.listening = true
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, s.connConfig.Copy())
		},
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				s.log.Warn("event store: listen for appends", "err", err)
			}
		},
		ReconnectDelay: listenRetry,
	}
	l.Handle(notifyChannel, listenHandler{s})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = l.Listen(s.ctx) // returns only when Close ends s.ctx
	}()
}

type listenHandler struct{ s *Store }

func (h listenHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	if n.Payload != h.s.id {
		h.s.wake.signal()
	}
	return nil
}

// HandleBacklog runs after each (re)connection: appends made while the
// listener was not listening sent notifications nobody received.
func (h listenHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.s.wake.signal()
	return nil
}

// broadcast wakes every waiter at once and never loses a wake-up: a waiter
// takes the channel before it reads, so a signal during the read closes the
// channel it is about to wait on.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
