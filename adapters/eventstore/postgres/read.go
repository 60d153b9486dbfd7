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
	"github.com/usersd/usersd/internal/positive"
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

	// An existing stream never answers an empty range that holds events:
	// a range this store knows to hold a revision, or that the existence
	// check finds one in (the stream was first written after the read
	// looked), is read a second time, at most.
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
		if attempt > 0 {
			return []eventstore.RecordedEvent{}, nil
		}
		// Nothing in range: an empty answer if the stream exists. A stream
		// this store has seen a revision of exists (events are never
		// deleted), which spares the usual catch-up read of a cached
		// aggregate a second query.
		if known, ok := s.seen.get(stream); ok {
			if opts.Backwards || uint64(from) <= known {
				continue
			}
			return []eventstore.RecordedEvent{}, nil
		}
		var exists, inRange bool
		err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1),
			EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND CASE WHEN $3 THEN revision <= $2 ELSE revision >= $2 END)`,
			stream, from, opts.Backwards).Scan(&exists, &inRange)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", stream, err)
		case !exists:
			return nil, fmt.Errorf("read %s: %w", stream, eventstore.ErrStreamNotFound)
		case !inRange:
			return []eventstore.RecordedEvent{}, nil
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

// While committed events wait behind an older event writer still running,
// the subscription re-reads after these pauses: nothing announces that the
// older writer ended. The cap bounds the lag this adds against the cost of
// a read.
const (
	minBackoff = time.Millisecond
	maxBackoff = 10 * time.Millisecond
)

// SubscribeToAll implements eventstore.Store. It reads in global order the
// events of transactions that have all ended, hands them over in batches,
// and when none are left waits for an append (in this process or, through
// LISTEN, another), a notification-less poll, or ctx.
func (s *Store) SubscribeToAll(ctx context.Context, from domain.Position, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	size := positive.Or(opts.BatchSize, defaultBatchSize)
	s.listen()
	query, err := s.readAllQuery(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	backoff := minBackoff
	caughtUp := false // the last batch handed over was CaughtUp, and nothing since
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Taken before reading, so an append during the read wakes us.
		woken := s.wake.wait()
		p, err := s.readAll(ctx, query, from, size)
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
			// Committed events wait behind an older writer still running.
			// Nothing says which append's end moves the horizon, so look
			// again soon, less often the longer it takes (waking at every
			// append's end instead was no faster under load, for a read
			// per append and subscriber).
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

// readAllMarked reads, after ($1, $2), at most $3 events of transactions
// below the horizon: every event-writing transaction below it has ended, so
// no transaction can still commit an event with a lower (tx_id, position)
// than one read. The LEFT JOIN keeps the horizon row when there are no
// events.
//
// The horizon is the lowest transaction the statement's snapshot S sees as
// running, leaving out those that, in the lock table L looked at after S,
// are running without the event writers' marker (migration 00021: a shared
// advisory lock an event-inserting transaction takes before it has an id
// and holds until it ends); with none left, S's xmax. Before, it was S's
// xmin: then any transaction with an id anywhere on the server (a
// projection's batch, the outbox, another database's) held subscribers
// back.
//
// Why no event is skipped. Take an event e of transaction x, with x below
// the horizon. If S does not see x running, x ended before S and S sees e
// if x committed. Otherwise x was left out: at L it held its id's lock (it
// was running) and not the marker. Suppose e commits.
//   - e inserted before L: the marker was taken before e's insert (the
//     trigger) and is held until x ends, or released with a rolled-back
//     subtransaction that took it, which rolls back e's insert too, or any
//     later one that found it set. So x held it at L. Contradiction.
//   - e inserted after L: x had its id before S, so before L. The marker
//     taken after L would find the id and refuse (e is not inserted);
//     taken before L, it was held at L, as above. Contradiction.
//
// Hence x never commits an event, and reading past it skips nothing.
// Both "not running at L" cases err towards holding the horizon: a
// transaction that ended between S and L (S does not see its events),
// one whose id S sees but whose lock is not yet in the table, or one
// whose lock goes before its marker at commit. L is one call of
// pg_lock_status (materialised), an atomic copy of the lock table (neither
// transaction-id nor advisory locks take the fast path), taken during the
// statement, so after S, which pg_current_snapshot answers and the events'
// scan uses. A transaction's two locks are matched by pid, never by
// virtualtransaction: a committing backend clears its local transaction id
// while still holding its locks, so one pg_lock_status call can show its
// id's lock under the old virtual id and the marker under the cleared one
// (that join skipped events under TestSubscriberGapFreeUnderMixedLoad). A
// prepared transaction has no pid and always holds the horizon.
//
// Where a marker held by a prepared transaction (no pid) is in the table,
// the statement falls back to S's xmin, the old horizon, which holds for
// any writer: PREPARE TRANSACTION moves a transaction's locks one lock
// partition at a time, so one copy of the table can show its marker moved
// and its id's lock still under its pid.
//
// With no transaction running (an empty xip: a prepared one is running
// too) the horizon is S's xmax, and the lock table is not read at all.
//
// Where the lock table cannot be trusted at all, the subscription reads
// with readAllXmin instead (markedWritersQuery). Transactions of other
// databases never hold this database's marker and no longer hold the
// horizon. A 32-bit xid names one running transaction:
// running ones lie within 2^31 of each other.
const readAllMarked = `
WITH s AS (SELECT pg_current_snapshot() AS snap),
l AS MATERIALIZED (
	SELECT locktype, pid, transactionid, classid, objid, objsubid, database, mode
	FROM pg_locks WHERE granted AND locktype IN ('transactionid', 'advisory')
),
markers AS (
	SELECT pid FROM l
	WHERE locktype = 'advisory' AND classid = 1702261879 AND objid = 0 AND objsubid = 2
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
unmarked AS (
	SELECT t.transactionid::text::bigint AS xid FROM l t
	WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.pid IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM markers m WHERE m.pid = t.pid)
),
x AS (
	SELECT CASE
	WHEN NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(s.snap))
	THEN pg_snapshot_xmax(s.snap)::text::bigint
	WHEN EXISTS (SELECT 1 FROM markers WHERE pid IS NULL)
	THEN pg_snapshot_xmin(s.snap)::text::bigint
	ELSE coalesce(
		(SELECT min(r::text::bigint) FROM pg_snapshot_xip(s.snap) r
		 WHERE r::text::bigint % 4294967296 NOT IN (SELECT xid FROM unmarked)),
		pg_snapshot_xmax(s.snap)::text::bigint)
	END AS horizon
	FROM s
)
` + readAllEvents

// readAllXmin is readAllMarked with the horizon subscriptions had before
// writers were marked: the oldest transaction with an id on the server. It
// holds whatever runs, for the databases where markers cannot be trusted
// (see markedWritersQuery).
const readAllXmin = `
WITH x AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon)
` + readAllEvents

// readAllEvents reads below the horizon x; the LEFT JOIN keeps the horizon
// row when there are no events. pending asks max(tx_id), one probe at the
// end of the (tx_id, position) index: the planner cannot estimate a
// horizon computed in the statement, and for EXISTS (tx_id >= horizon) it
// chose a scan of the whole table (a quarter of a second a page at 1M
// events).
const readAllEvents = `SELECT h.pending, e.event_id, e.stream_id, e.revision, e.tx_id, e.position, e.type, e.data, e.metadata, e.created_at
FROM (
	SELECT x.horizon, coalesce((SELECT max(tx_id) FROM events) >= x.horizon, false) AS pending FROM x
) h
LEFT JOIN LATERAL (
	SELECT * FROM events
	WHERE tx_id < h.horizon AND (tx_id, position) > ($1, $2)
	ORDER BY tx_id, position
	LIMIT $3
) e ON true`

// markedWritersQuery tells whether the database's event writers are
// marked, so that a subscription may read with readAllMarked: a primary
// (a standby's snapshots and lock table know nothing of the primary's
// running transactions) whose marker trigger is enabled ALWAYS (a database
// not yet migrated to 00021, read by usersd events export, or one whose
// triggers a restore or a replication apply disabled, marks nobody). It is
// asked once per subscription; disabling the trigger under a running
// service is the owner's act, and docs/threat-model.md says what it costs.
const markedWritersQuery = `SELECT NOT pg_is_in_recovery() AND EXISTS (
	SELECT 1 FROM pg_trigger
	WHERE tgrelid = 'events'::regclass AND tgname = 'events_writer_marker' AND tgenabled = 'A')`

// readAllQuery answers the query a subscription reads with.
func (s *Store) readAllQuery(ctx context.Context) (string, error) {
	var marked bool
	if err := s.subscriptionPool().QueryRow(ctx, markedWritersQuery).Scan(&marked); err != nil {
		return "", fmt.Errorf("are event writers marked: %w", err)
	}
	if !marked {
		s.warnUnmarked.Do(func() {
			s.log.Warn("event store: event writers are not marked (a standby, or the events_writer_marker trigger missing or disabled); subscriptions wait for every transaction on the server")
		})
		return readAllXmin, nil
	}
	return readAllMarked, nil
}

func (s *Store) readAll(ctx context.Context, query string, from domain.Position, size int) (page, error) {
	commit, prepare := int64(min(from.Commit, math.MaxInt64)), int64(min(from.Prepare, math.MaxInt64))
	pool := s.subscriptionPool()
	rows, err := pool.Query(ctx, query, commit, prepare, size)
	if err != nil && pool != s.pool && s.ctx.Err() != nil {
		// Close closed the read pool under this read: the store's pool
		// still serves.
		rows, err = s.pool.Query(ctx, query, commit, prepare, size)
	}
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
