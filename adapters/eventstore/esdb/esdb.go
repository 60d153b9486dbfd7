// Package esdb is the event store on EventStoreDB / KurrentDB, through the
// official Go client (github.com/EventStore/EventStore-Client-Go/v4). It
// passes the eventstore contract suite against the in-process test server of
// esdbtest, and against a real server when ESDB_URL is set.
//
// Streams keep their names (optionally behind a namespace, so that several
// deployments or test runs can share one cluster); expected revisions map to
// the client's Any, NoStream, StreamExists and StreamRevision; a wrong
// expected version becomes eventstore.ErrWrongExpectedRevision, hence
// domain.ErrConcurrency. A domain.Position is EventStoreDB's commit and
// prepare position, unchanged, so read-model checkpoints in PostgreSQL keep
// working whichever store holds the events.
//
// The v4 client neither retries appends nor resubscribes: this package
// retries an append whose outcome is unknown with the same event ids (the
// server stores it once), resubscribes from the last checkpoint with
// backoff, and replaces a client that gave up on discovering a node.
package esdb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/internal/positive"
)

const (
	defaultBatchSize     = 500
	defaultAppendRetries = 20
	defaultMinBackoff    = 100 * time.Millisecond
	defaultMaxBackoff    = 10 * time.Second
	// defaultCallTimeout bounds an append or a read (with its retries)
	// whose caller set no deadline, and the wait for a subscription's
	// confirmation. Without it an append could wait on the client's own
	// 10 s deadline per try, four tries in a row.
	defaultCallTimeout = 10 * time.Second
	// defaultMaxDiscoverAttempts replaces the client's default of 10 when
	// the connection string sets none: 10 attempts 100 ms apart give up
	// within about a second, shorter than a leader election, and a client
	// that gives up strands the calls waiting in it (see session). 600
	// attempts last a minute or more.
	defaultMaxDiscoverAttempts = 600
	// searchWindow and checkpointMultiplier make a filtered subscription
	// send a checkpoint after every 320 records it skipped. The adapter
	// uses them only to know that the subscription is alive: a batch's
	// checkpoint is always the position of an event handed over (see
	// batcher), and a resubscription starts from the last one, so a
	// restart on a busy shared cluster re-scans the foreign records since
	// our last event: correct, only slower.
	searchWindow         = 32
	checkpointMultiplier = 10
)

var _ eventstore.Store = (*Store)(nil)

// Store is an eventstore.Store on EventStoreDB. Close it when done.
type Store struct {
	log           *slog.Logger
	namespace     string
	filter        []string // stream name prefixes of the $all subscription, namespace included
	ownCheck      bool     // records must also look like usersd's (see owned)
	appendRetries int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	callTimeout   time.Duration
	parallel      int // appends StartStreams runs at once

	// config is set when the store made its client, and lets it make a new
	// one when the old has given up (see session).
	config *esdbclient.Configuration

	mu     sync.Mutex
	sess   *session
	closed bool
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets where the store reports dropped subscriptions and
// reconnections. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithNamespace puts every stream behind a prefix: stream "workspace-1" is
// stored as namespace+"workspace-1" and read back without it. Several
// deployments (or test runs) can then share one cluster, each subscription
// seeing only its own. The default is none.
func WithNamespace(ns string) Option { return func(s *Store) { s.namespace = ns } }

// WithStreamPrefixes sets which streams (after the namespace) a
// subscription to $all delivers; the server filters on them. The default is
// eventstore.StreamPrefixes, and then a record must also look like one
// usersd wrote (eventstore.IsOurRecord): on a cluster other applications
// share, their records in streams whose names collide with ours are
// skipped. With prefixes set here, every record of those streams is
// delivered. An empty prefix, which means every stream of the namespace,
// needs a namespace: on its own it would take in the server's system
// streams.
func WithStreamPrefixes(prefixes ...string) Option {
	return func(s *Store) {
		s.filter = append([]string(nil), prefixes...)
		s.ownCheck = false
	}
}

// WithAppendRetries sets how many times an append whose outcome is unknown
// (node unavailable or not ready, not the leader, an election, a server
// timeout) is sent again with the same event ids, within the call's
// deadline. The default is 20; zero disables retries.
func WithAppendRetries(n int) Option { return func(s *Store) { s.appendRetries = max(n, 0) } }

// WithResubscribeBackoff sets the pause before resubscribing after a
// subscription dropped: min at first, doubling up to max, back to min once
// the new subscription delivers. The defaults are 100 ms and 10 s.
func WithResubscribeBackoff(minimum, maximum time.Duration) Option {
	return func(s *Store) {
		if minimum > 0 && maximum >= minimum {
			s.minBackoff, s.maxBackoff = minimum, maximum
		}
	}
}

// WithCallTimeout sets the deadline of an append or a read, retries
// included, whose context has none, and how long a subscription waits for
// the server to confirm it. The default is 10 s.
func WithCallTimeout(d time.Duration) Option {
	return func(s *Store) { s.callTimeout = positive.Or(d, s.callTimeout) }
}

// New returns a Store on client. Closing the Store does not close client,
// and a client that gives up on discovery is not replaced: use Open for that.
func New(client *esdbclient.Client, opts ...Option) *Store {
	if client == nil {
		panic("eventstore/esdb: nil client")
	}
	return newStore(client, nil, opts)
}

// Open connects to the server of a connection string
// (esdb://host:port?tls=false, esdb+discover://user:pass@cluster:2113, ...).
// The client connects lazily: Open fails only on a malformed string; the
// first call reports an unreachable server. Unless the string sets
// maxDiscoverAttempts, the client tries defaultMaxDiscoverAttempts times
// instead of its own 10.
func Open(connectionString string, opts ...Option) (*Store, error) {
	config, err := esdbclient.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("esdb connection string: %w", err)
	}
	if !setsParameter(connectionString, "maxDiscoverAttempts") {
		config.MaxDiscoverAttempts = defaultMaxDiscoverAttempts
	}
	s := newStore(nil, config, opts)
	config.Logger = clientLogger(s.log)
	client, err := esdbclient.NewClient(config)
	if err != nil {
		return nil, fmt.Errorf("esdb client: %w", err)
	}
	s.sess = newSession(client)
	return s, nil
}

// setsParameter reports whether a connection string sets a parameter; the
// client reads parameter names case-insensitively.
func setsParameter(connectionString, name string) bool {
	_, query, ok := strings.Cut(connectionString, "?")
	if !ok {
		return false
	}
	for _, kv := range strings.Split(query, "&") {
		key, _, _ := strings.Cut(kv, "=")
		if strings.EqualFold(key, name) {
			return true
		}
	}
	return false
}

// clientLogger sends the client's own messages to l, a level lower than the
// client gives them: it reports every cancelled subscription as an error,
// and what matters (a dropped subscription, a failed append) this package
// logs or returns itself. The client never logs event data.
func clientLogger(l *slog.Logger) esdbclient.LoggingFunc {
	return func(level esdbclient.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		if level == esdbclient.LogWarn || level == esdbclient.LogError {
			lvl = slog.LevelInfo
		}
		l.Log(context.Background(), lvl, "esdb client: "+fmt.Sprintf(format, args...))
	}
}

func newStore(client *esdbclient.Client, config *esdbclient.Configuration, opts []Option) *Store {
	s := &Store{
		log:           slog.Default(),
		filter:        eventstore.StreamPrefixes,
		ownCheck:      true,
		appendRetries: defaultAppendRetries,
		minBackoff:    defaultMinBackoff,
		maxBackoff:    defaultMaxBackoff,
		callTimeout:   defaultCallTimeout,
		parallel:      defaultStartParallel,
		config:        config,
	}
	if client != nil {
		s.sess = newSession(client)
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.filter) == 0 {
		panic("eventstore/esdb: no stream prefixes to subscribe to")
	}
	prefixes := make([]string, len(s.filter))
	for i, p := range s.filter {
		prefixes[i] = s.namespace + p
		if prefixes[i] == "" || strings.HasPrefix(prefixes[i], "$") {
			panic(fmt.Sprintf("eventstore/esdb: stream prefix %q would take in system streams", prefixes[i]))
		}
	}
	s.filter = prefixes
	return s
}

// Close closes the client if Open made it, once no call is inside it.
// Calls afterwards fail.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.config != nil {
		s.sess.retire()
	}
}

// bounded gives ctx the store's call timeout when it has no deadline.
func (s *Store) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.callTimeout)
}

// pause waits d, or less if ctx ends first; it reports whether ctx is
// still alive.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stored names a stream as the server knows it.
func (s *Store) stored(stream string) string { return s.namespace + stream }

// ours reports whether a stored stream name belongs to this store's
// subscriptions, and returns the name without the namespace.
func (s *Store) ours(stored string) (string, bool) {
	for _, p := range s.filter {
		if strings.HasPrefix(stored, p) {
			return strings.TrimPrefix(stored, s.namespace), true
		}
	}
	return "", false
}
