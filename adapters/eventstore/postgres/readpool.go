package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// subscriptionConns caps the connections subscriptions read through. Reads
// are short and a subscriber reads once per batch, so a few serve every
// subscription of a process (usersd serve: the runners, the outbox, the
// webhooks' dispatcher, the event feed's clients).
const subscriptionConns = 4

// readPool is where subscriptions read the global order: a small pool of
// its own, beside the one appends and queries share. In the shared pool a
// subscription's read queued behind every command waiting for a
// connection; under load that wait (tens of ms) was most of the time from
// an append's commit until its subscribers read it, and it delayed every
// read model and every read-your-writes read behind it.
type readPool struct {
	mu     sync.Mutex
	pool   *pgxpool.Pool
	closed bool
}

// subscriptionPool answers the pool to read through, opening it on first use; the
// store's own when the read pool cannot be had (it could not be set up, or
// the store is closed: reads still work then).
func (s *Store) subscriptionPool() *pgxpool.Pool {
	r := &s.reads
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pool == nil && !r.closed {
		cfg := s.pool.Config() // a copy
		cfg.MaxConns, cfg.MinConns = subscriptionConns, 0
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			s.log.Warn("event store: subscriptions read through the shared pool", "err", err)
			r.closed = true
			return s.pool
		}
		r.pool = p
	}
	if r.pool == nil {
		return s.pool
	}
	return r.pool
}

// close closes the read pool once the reads in flight are done; later
// reads go through the store's pool.
func (r *readPool) close() {
	r.mu.Lock()
	p := r.pool
	r.pool, r.closed = nil, true
	r.mu.Unlock()
	if p != nil {
		p.Close()
	}
}
