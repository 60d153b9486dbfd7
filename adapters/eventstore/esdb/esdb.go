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
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/usersd/usersd/adapters/eventstore"
)

const (
	defaultBatchSize     = 500
	defaultAppendRetries = 3
	defaultMinBackoff    = 100 * time.Millisecond
	defaultMaxBackoff    = 10 * time.Second
	// searchWindow and checkpointMultiplier make a filtered subscription
	// send a checkpoint after every 320 records it skipped. The runner does
	// not store the positions of batches without events, and a
	// resubscription starts from the last event, so a restart on a busy
	// shared cluster re-scans the foreign records since our last event:
	// correct, only slower.
	searchWindow         = 32
	checkpointMultiplier = 10
)

var _ eventstore.Store = (*Store)(nil)

// Store is an eventstore.Store on EventStoreDB. Close it when done.
type Store struct {
	log           *slog.Logger
	namespace     string
	filter        []string // stream name prefixes of the $all subscription, namespace included
	appendRetries int
	minBackoff    time.Duration
	maxBackoff    time.Duration

	// config is set when the store made its client, and lets it make a new
	// one when the old has given up (see conn).
	config *esdbclient.Configuration

	mu     sync.Mutex
	client *esdbclient.Client
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
// eventstore.StreamPrefixes. An empty prefix, which means every stream of
// the namespace, needs a namespace: on its own it would take in the
// server's system streams.
func WithStreamPrefixes(prefixes ...string) Option {
	return func(s *Store) { s.filter = append([]string(nil), prefixes...) }
}

// WithAppendRetries sets how many times an append whose outcome is unknown
// (node unavailable, not the leader, deadline passed) is sent again with
// the same event ids. The default is 3; zero disables retries.
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
// first call reports an unreachable server.
func Open(connectionString string, opts ...Option) (*Store, error) {
	config, err := esdbclient.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("esdb connection string: %w", err)
	}
	s := newStore(nil, config, opts)
	config.Logger = clientLogger(s.log)
	if s.client, err = esdbclient.NewClient(config); err != nil {
		return nil, fmt.Errorf("esdb client: %w", err)
	}
	return s, nil
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
		appendRetries: defaultAppendRetries,
		minBackoff:    defaultMinBackoff,
		maxBackoff:    defaultMaxBackoff,
		config:        config,
		client:        client,
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

// Close closes the client if Open made it. Calls afterwards fail.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.config != nil {
		_ = s.client.Close()
	}
}

// conn returns the client to use.
func (s *Store) conn() (*esdbclient.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return s.client, nil
}

// replace swaps in a new client for old when old has closed itself. The v4
// client closes for good when a discovery fails (every node unreachable for
// its discovery attempts, as during a full-cluster restart); without a new
// one the process would never reconnect. It reports whether the caller
// should try again.
func (s *Store) replace(old *esdbclient.Client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.config == nil {
		return false
	}
	if s.client != old {
		return true // another call replaced it already
	}
	fresh, err := esdbclient.NewClient(s.config)
	if err != nil {
		s.log.Error("esdb: new client", "err", err)
		return false
	}
	s.client = fresh
	_ = old.Close()
	s.log.Warn("esdb: client gave up on discovery; replaced it")
	return true
}

// codeOf returns the client's error code, or ErrorCodeUnknown.
func codeOf(err error) esdbclient.ErrorCode {
	var e *esdbclient.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return esdbclient.ErrorCodeUnknown
}

// transient reports whether a call may succeed if made again: the node went
// away, is no longer the leader (the client is already reconnecting to the
// new one), or did not answer in time.
func transient(err error) bool {
	switch codeOf(err) {
	case esdbclient.ErrorUnavailable, esdbclient.ErrorCodeNotLeader,
		esdbclient.ErrorCodeDeadlineExceeded, esdbclient.ErrorAborted:
		return true
	}
	return false
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
