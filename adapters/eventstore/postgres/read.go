package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
)

const eventColumns = `event_id, stream_id, revision, tx_id, position, type, data, metadata, created_at`

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Max < 0 {
		return nil, fmt.Errorf("read %s: negative Max %d", stream, opts.Max)
	}
	query := `SELECT ` + eventColumns + ` FROM events
		WHERE stream_id = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	if opts.Backwards {
		query = `SELECT ` + eventColumns + ` FROM events
			WHERE stream_id = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`
	}
	from := int64(min(opts.From, math.MaxInt64))
	if opts.FromEnd {
		// Backwards from the end reads everything; forwards from the end
		// reads nothing, as no revision lies beyond it.
		from = math.MaxInt64
	}
	var limit *int64 // LIMIT NULL: no limit
	if opts.Max > 0 {
		limit = ptr(int64(opts.Max))
	}

	// At most two reads: a stream first written between an empty read and
	// the existence check below is read again, so that an existing stream
	// never answers an empty range that holds events.
	for attempt := 0; ; attempt++ {
		rows, err := s.pool.Query(ctx, query, stream, from, limit)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		events, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		if len(events) > 0 {
			s.seen.saw(stream, max(events[0].Revision, events[len(events)-1].Revision))
			return events, nil
		}
		// Nothing in range: an empty answer if the stream exists elsewhere.
		// A stream this store has seen a revision of exists (events are
		// never deleted), which spares the usual catch-up read of a cached
		// aggregate a second query.
		if _, ok := s.seen.get(stream); ok || attempt > 0 {
			return []eventstore.RecordedEvent{}, nil
		}
		var exists bool
		err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1)`, stream).Scan(&exists)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", stream, err)
		case !exists:
			return nil, fmt.Errorf("read %s: %w", stream, eventstore.ErrStreamNotFound)
		}
	}
}

func scanEvent(row pgx.CollectableRow) (eventstore.RecordedEvent, error) {
	var e eventstore.RecordedEvent
	var revision, commit, prepare int64
	err := row.Scan(&e.ID, &e.StreamID, &revision, &commit, &prepare, &e.Type, &e.Data, &e.Metadata, &e.CreatedAt)
	e.Revision = uint64(revision)
	e.Position = domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
	return e, err
}

// While committed events wait behind an older transaction still running,
// the subscription re-reads with these pauses: nothing announces that the
// older transaction ended. The cap bounds the lag this adds (measured: the
// main part of append-to-visible lag under continuous writes) against the
// cost of an indexed, usually empty read.
const (
	minBackoff = time.Millisecond
	maxBackoff = 10 * time.Millisecond
)

// SubscribeToAll implements eventstore.Store. It reads in global order the
// events of transactions that have all ended, hands them over in batches,
// and when none are left waits for an append (in this process or, through
// LISTEN, another), a notification-less poll, or ctx.
func (s *Store) SubscribeToAll(ctx context.Context, from domain.Position, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	size := opts.BatchSize
	if size <= 0 {
		size = defaultBatchSize
	}
	s.listen()

	backoff := minBackoff
	caughtUp := false // the last batch handed over was CaughtUp, and nothing since
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Taken before reading, so an append during the read wakes us.
		woken := s.wake.wait()
		p, err := s.readAll(ctx, from, size)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("subscribe to all from %s: %w", from, err)
		}

		atEnd := len(p.events) < size && !p.pending
		// An empty CaughtUp batch is sent once on reaching the end, not on
		// every wake-up that finds nothing new.
		if len(p.events) > 0 || (atEnd && !caughtUp) {
			b := eventstore.Batch{Events: p.events, Checkpoint: from, CaughtUp: atEnd}
			if n := len(p.events); n > 0 {
				b.Checkpoint = p.events[n-1].Position
			}
			if err := h(ctx, b); err != nil {
				return err
			}
			from, caughtUp = b.Checkpoint, atEnd
		}

		switch {
		case len(p.events) == size:
			backoff = minBackoff
		case p.pending:
			// Committed events wait behind an older transaction still
			// running. No notification says when it ends, so look again
			// soon, less often the longer it takes.
			if err := pause.For(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, maxBackoff)
		default:
			backoff = minBackoff
			if err := s.waitForAppend(ctx, woken); err != nil {
				return err
			}
		}
	}
}

// page is one read of the global order.
type page struct {
	events []eventstore.RecordedEvent
	// pending is true when committed events lie beyond the horizon: the
	// subscription is not caught up, only held back.
	pending bool
}

// readAllQuery reads, after ($1, $2), at most $3 events of transactions
// older than the oldest still running (the horizon): those can no longer
// change, whereas a younger transaction's events could still be joined by
// an older one committing later with lower (tx_id, position). The horizon,
// the events and the pending flag all come from the statement's one snapshot.
// The LEFT JOIN keeps the horizon row when there are no events.
const readAllQuery = `
SELECT h.pending, e.event_id, e.stream_id, e.revision, e.tx_id, e.position, e.type, e.data, e.metadata, e.created_at
FROM (
	SELECT x.horizon, EXISTS (SELECT 1 FROM events WHERE tx_id >= x.horizon) AS pending
	FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon) x
) h
LEFT JOIN LATERAL (
	SELECT * FROM events
	WHERE tx_id < h.horizon AND (tx_id, position) > ($1, $2)
	ORDER BY tx_id, position
	LIMIT $3
) e ON true`

func (s *Store) readAll(ctx context.Context, from domain.Position, size int) (page, error) {
	rows, err := s.pool.Query(ctx, readAllQuery, int64(min(from.Commit, math.MaxInt64)), int64(min(from.Prepare, math.MaxInt64)), size)
	if err != nil {
		return page{}, err
	}
	defer rows.Close()
	p := page{events: make([]eventstore.RecordedEvent, 0, size)}
	for rows.Next() {
		var (
			id                        *uuid.UUID
			stream, typ               *string
			revision, commit, prepare *int64
			created                   *time.Time
			e                         eventstore.RecordedEvent
		)
		if err := rows.Scan(&p.pending, &id, &stream, &revision, &commit, &prepare, &typ, &e.Data, &e.Metadata, &created); err != nil {
			return page{}, err
		}
		if id == nil { // the horizon row alone: no events
			continue
		}
		e.ID, e.StreamID, e.Type, e.CreatedAt = *id, *stream, *typ, *created
		e.Revision = uint64(*revision)
		e.Position = domain.Position{Commit: uint64(*commit), Prepare: uint64(*prepare)}
		p.events = append(p.events, e)
	}
	return p, rows.Err()
}

// waitForAppend returns when woken is closed, the poll interval passes, or
// ctx ends (then with its error).
func (s *Store) waitForAppend(ctx context.Context, woken <-chan struct{}) error {
	t := time.NewTimer(s.pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-woken:
		return nil
	case <-t.C:
		return nil
	}
}

var _ eventstore.LastEventsReader = (*Store)(nil)

// LastEvents implements eventstore.LastEventsReader in one query.
func (s *Store) LastEvents(ctx context.Context, streams []string) (map[string]eventstore.RecordedEvent, error) {
	out := make(map[string]eventstore.RecordedEvent)
	if len(streams) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM unnest($1::text[]) AS w(stream)
		CROSS JOIN LATERAL (SELECT `+eventColumns+` FROM events
			WHERE stream_id = w.stream ORDER BY revision DESC LIMIT 1) e`, streams)
	if err != nil {
		return nil, fmt.Errorf("read the last events of %d streams: %w", len(streams), err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read the last events of %d streams: %w", len(streams), err)
	}
	for _, e := range events {
		out[e.StreamID] = e
	}
	return out, nil
}
