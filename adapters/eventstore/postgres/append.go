package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// Expected revisions as append_events takes them; exact revisions are >= 0.
const (
	expectAny          = -1
	expectNoStream     = -2
	expectStreamExists = -3
)

// Unique constraints whose violations Append turns into answers.
const (
	revisionKey = "events_pkey"         // another append took the revision
	eventIDKey  = "events_event_id_key" // an event id is already stored
)

// maxAppendAttempts bounds the retries of an append that keeps losing races
// for the stream's next revision. Appends with "any" and "stream exists"
// only race appends with exact expectations (they queue among themselves),
// and each retry follows a committed winner, so it rarely takes two.
const maxAppendAttempts = 10

// appendRow is what append_events and find_append answer.
type appendRow struct {
	status   *string
	revision *int64
	commit   *int64
	prepare  *int64
	woken    bool // its group already woke the subscribers
}

// Append implements eventstore.Store in one round trip to the database (two
// when a race or a retried append needs a second look).
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	code, err := expectedCode(stream, expected)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	a := newAppendArgs(events)
	if code >= 0 || code == expectNoStream {
		var row appendRow
		var err error
		if !s.boundToFail(stream, code) { // else no need to wait for a group
			row, err = s.appends.do(ctx, appendItem{stream: stream, expected: code, args: a})
			if errors.Is(err, errAlone) {
				row, err = s.appendFast(ctx, stream, code, a)
			}
		}
		switch {
		case err == nil && row.status != nil:
			return s.answer(stream, expected, row)
		case violates(err, eventIDKey):
			return s.answerReuse(ctx, stream, expected, a.ids)
		case err != nil && !violates(err, revisionKey):
			return eventstore.AppendResult{}, appendError(stream, err)
		}
		// The expectation failed, or another append took the revision
		// first: append_events says which, or finds this to be a retry.
	}
	return s.appendFull(ctx, stream, expected, code, a)
}

// appendSQL builds the plain-statement appends: append_events without its
// PL/pgSQL, for the expected revisions command handlers use, an exact
// revision or no stream. A single plain statement costs the server markedly
// less (one snapshot, no interpreter); it made appends from 16 writers about
// a fifth faster. $2 is the stream's expected last revision.
//
// checked: the statement looks the stream's last revision up and inserts
// nothing unless it equals $2 (NULL: no stream); append_events then tells
// why. Unchecked, for a revision seenRevisions knows is stored: it inserts
// after $2, and the primary key refuses it if the stream is further on.
//
// source yields the events as e(id, type, data, metadata, n).
func appendSQL(checked bool, source string) string {
	base, from, where := "$2::bigint", source, ""
	if checked {
		base = "coalesce(c.revision, -1)"
		from = "(SELECT max(revision) AS revision FROM events WHERE stream_id = $1) c, " + source
		where = "WHERE c.revision IS NOT DISTINCT FROM $2::bigint"
	}
	return `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT e.id, $1, ` + base + ` + e.n, e.type, e.data, e.metadata
FROM ` + from + `
` + where + `
ORDER BY e.n
RETURNING revision, tx_id, position`
}

const manyEvents = `unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[]) WITH ORDINALITY AS e(id, type, data, metadata, n)`

// One event, the usual case, goes as plain parameters (encoding and
// unnesting arrays costs both sides more than the rest of the work) into
// the simplest statements: a lone writer's append is this one statement,
// and a plain VALUES row spared it a tenth of its time against a
// VALUES list with a sort.
const (
	appendOneSQL = `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT $3::uuid, $1, coalesce(c.revision, -1) + 1, $4::text, $5::jsonb, $6::jsonb
FROM (SELECT max(revision) AS revision FROM events WHERE stream_id = $1) c
WHERE c.revision IS NOT DISTINCT FROM $2::bigint
RETURNING revision, tx_id, position`
	appendOneAfterSeenSQL = `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
VALUES ($3::uuid, $1, $2::bigint + 1, $4::text, $5::jsonb, $6::jsonb)
RETURNING revision, tx_id, position`
)

// The statements appendFast runs for several events, built once.
var (
	appendManySQL          = appendSQL(true, manyEvents)
	appendManyAfterSeenSQL = appendSQL(false, manyEvents)
)

// boundToFail tells whether seenRevisions knows stream to be past expected.
func (s *Store) boundToFail(stream string, expected int64) bool {
	known, ok := s.seen.get(stream)
	return expected >= 0 && ok && known > uint64(expected)
}

// appendFast appends with a plain statement. Its row has a nil status when
// nothing was inserted because the expectation does not hold.
func (s *Store) appendFast(ctx context.Context, stream string, expected int64, a appendArgs) (appendRow, error) {
	var last *int64 // no stream
	one, many := appendOneSQL, appendManySQL
	if expected >= 0 {
		last = &expected
		if known, ok := s.seen.get(stream); ok {
			switch {
			case known > uint64(expected):
				return appendRow{}, nil // bound to fail: no need to try
			case known == uint64(expected):
				one, many = appendOneAfterSeenSQL, appendManyAfterSeenSQL
			}
		}
	}
	var rows pgx.Rows
	var err error
	if len(a.ids) == 1 {
		rows, err = s.pool.Query(ctx, one, stream, last, a.ids[0], a.types[0], a.data[0], a.metadata[0])
	} else {
		rows, err = s.pool.Query(ctx, many, stream, last, a.ids, a.types, a.data, a.metadata)
	}
	if err != nil {
		return appendRow{}, err
	}
	defer rows.Close()
	var r appendRow
	for rows.Next() { // in insertion order: the last row is the last event
		if err := rows.Scan(&r.revision, &r.commit, &r.prepare); err != nil {
			return appendRow{}, err
		}
		r.status = ptr("appended")
	}
	return r, rows.Err()
}

// startNewSQL inserts each event at revision 0 of its stream, skipping the
// streams that exist, as a plain insert. A stream started concurrently (or
// an event id stored elsewhere) fails it on a unique key; startStreamsSQL
// then settles it. Rows go in by stream name, so that two calls sharing
// streams take their locks in the same order and cannot deadlock.
const startNewSQL = `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT e.id, e.stream, 0, e.type, e.data, e.metadata
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) AS e(id, stream, type, data, metadata)
WHERE NOT EXISTS (SELECT FROM events x WHERE x.stream_id = e.stream)
ORDER BY e.stream
RETURNING stream_id`

// startStreamsSQL is startNewSQL for when that collides: the primary key
// skips the streams that exist (and, for a retried call, the event ids
// already stored). A concurrent start of the same stream waits for the
// first to commit and then skips it, as "no stream" would refuse.
const startStreamsSQL = `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT e.id, e.stream, 0, e.type, e.data, e.metadata
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) AS e(id, stream, type, data, metadata)
ORDER BY e.stream
ON CONFLICT DO NOTHING
RETURNING stream_id`

// StartStreams implements eventstore.StreamStarter in one statement, shared
// with the calls that come while another is in flight; a large call goes in
// chunks side by side.
func (s *Store) StartStreams(ctx context.Context, starts []eventstore.StreamStart) ([]bool, error) {
	if len(starts) == 0 {
		return nil, nil
	}
	if err := eventstore.CheckStarts(starts); err != nil {
		return nil, err
	}
	item := startItem{streams: make([]string, len(starts))}
	events := make([]eventstore.EventData, len(starts))
	for i, st := range starts {
		item.streams[i], events[i] = st.Stream, st.Event
	}
	item.args = newAppendArgs(events)
	var started []bool
	var err error
	if len(starts) < 2*startChunk {
		started, err = s.startItem(ctx, item)
	} else {
		started, err = s.startChunks(ctx, item)
	}
	if err != nil {
		return nil, appendError(fmt.Sprintf("%d streams", len(starts)), err)
	}
	return started, nil
}

// startChunk is the size of the chunks a large StartStreams call is cut
// into: inserting a row costs the server far more than sending it (three
// indexes, the primary key's at a random place), so a batch invitation's
// reservations took one backend, one core, the longest; in chunks, they
// run side by side as groups do.
const startChunk = 200

func (s *Store) startItem(ctx context.Context, item startItem) ([]bool, error) {
	started, err := s.starts.do(ctx, item)
	if errors.Is(err, errAlone) {
		started, err = s.startStreams(ctx, item)
	}
	return started, err
}

// startChunks runs item in chunks of at most startChunk consecutive
// stream names, each one statement, as many at once as there may be
// groups in flight: a statement stays short however large the call.
func (s *Store) startChunks(ctx context.Context, item startItem) ([]bool, error) {
	order := make([]int, len(item.streams))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(item.streams[a], item.streams[b]) })
	n := (len(order) + startChunk - 1) / startChunk
	started := make([]bool, len(order))
	errs := make([]error, n)
	var wg sync.WaitGroup
	slots := make(chan struct{}, s.inFlight)
	for c := range n {
		part := order[c*len(order)/n : (c+1)*len(order)/n]
		chunk := startItem{streams: make([]string, len(part)), args: appendArgs{
			ids: make([][16]byte, len(part)), types: make([]string, len(part)),
			data: make([][]byte, len(part)), metadata: make([][]byte, len(part)),
		}}
		for j, i := range part {
			chunk.streams[j] = item.streams[i]
			chunk.args.ids[j], chunk.args.types[j] = item.args.ids[i], item.args.types[i]
			chunk.args.data[j], chunk.args.metadata[j] = item.args.data[i], item.args.metadata[i]
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			got, err := s.startItem(ctx, chunk)
			for j, i := range part {
				if err == nil {
					started[i] = got[j]
				}
			}
			errs[c] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return started, nil
}

// startStreams runs one call's starts alone.
func (s *Store) startStreams(ctx context.Context, st startItem) ([]bool, error) {
	started, err := s.startRows(ctx, st.streams, st.args)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(st.streams))
	for i, stream := range st.streams {
		out[i] = started[stream]
	}
	if len(started) > 0 {
		s.appendedOne()
	}
	return out, nil
}

// startRows starts the streams that do not exist, which must be distinct,
// and answers those it started.
func (s *Store) startRows(ctx context.Context, streams []string, a appendArgs) (map[string]bool, error) {
	started, err := s.queryStarted(ctx, startNewSQL, streams, a)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "40P01") {
		started, err = s.queryStarted(ctx, startStreamsSQL, streams, a)
	}
	if err != nil {
		return nil, err
	}
	for stream := range started {
		s.seen.saw(stream, 0)
	}
	return started, nil
}

func (s *Store) queryStarted(ctx context.Context, sql string, streams []string, a appendArgs) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, sql, a.ids, streams, a.types, a.data, a.metadata)
	if err != nil {
		return nil, err
	}
	started := make(map[string]bool)
	for rows.Next() {
		var stream string
		if err := rows.Scan(&stream); err != nil {
			rows.Close()
			return nil, err
		}
		started[stream] = true
	}
	rows.Close()
	return started, rows.Err()
}

// appendFull appends through append_events, which checks every kind of
// expected revision and looks for a retried append when the check fails.
// For "any" and "stream exists" it queues appends to the same stream, so
// they do not race one another.
func (s *Store) appendFull(ctx context.Context, stream string, expected eventstore.ExpectedRevision, code int64, a appendArgs) (eventstore.AppendResult, error) {
	for attempt := 1; ; attempt++ {
		row, err := s.appendOnce(ctx, stream, code, a)
		switch {
		case err == nil:
			return s.answer(stream, expected, row)
		case violates(err, eventIDKey):
			return s.answerReuse(ctx, stream, expected, a.ids)
		case violates(err, revisionKey) && attempt < maxAppendAttempts:
			// Another append took the revision between our check and our
			// insert, and has committed. Running again re-checks against
			// it: an exact expectation now fails with the stream's real
			// revision; "any" appends after it.
			continue
		case violates(err, revisionKey):
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: expected %v, lost %d races for the next revision: %w",
				stream, expected, attempt, eventstore.ErrWrongExpectedRevision)
		default:
			return eventstore.AppendResult{}, appendError(stream, err)
		}
	}
}

// answerReuse answers an append that failed because some of its event ids
// are stored: an append with them committed first. That is this append's own
// retry racing it, or ids reused; only now is it worth looking them up.
func (s *Store) answerReuse(ctx context.Context, stream string, expected eventstore.ExpectedRevision, ids [][16]byte) (eventstore.AppendResult, error) {
	row, err := s.findAppend(ctx, stream, ids)
	if err != nil {
		return eventstore.AppendResult{}, appendError(stream, err)
	}
	if row.status == nil { // the first id is new, a later one is not
		row.status = ptr("idempotency")
	}
	return s.answer(stream, expected, row)
}

func (s *Store) appendOnce(ctx context.Context, stream string, expected int64, a appendArgs) (appendRow, error) {
	var r appendRow
	err := s.pool.QueryRow(ctx,
		`SELECT status, last_revision, commit_position, prepare_position
		 FROM append_events($1, $2, $3, $4, $5, $6)`,
		stream, expected, a.ids, a.types, a.data, a.metadata,
	).Scan(&r.status, &r.revision, &r.commit, &r.prepare)
	return r, err
}

func (s *Store) findAppend(ctx context.Context, stream string, ids [][16]byte) (appendRow, error) {
	var r appendRow
	err := s.pool.QueryRow(ctx,
		`SELECT status, last_revision, commit_position, prepare_position FROM find_append($1, $2)`,
		stream, ids,
	).Scan(&r.status, &r.revision, &r.commit, &r.prepare)
	return r, err
}

// answer turns the database's answer into Append's.
func (s *Store) answer(stream string, expected eventstore.ExpectedRevision, r appendRow) (eventstore.AppendResult, error) {
	switch deref(r.status) {
	case "appended":
		if !r.woken {
			s.appendedOne()
		}
		fallthrough
	case "duplicate":
		s.seen.saw(stream, uint64(*r.revision))
		return eventstore.AppendResult{
			NextExpectedRevision: uint64(*r.revision),
			Position:             domain.Position{Commit: uint64(*r.commit), Prepare: uint64(*r.prepare)},
		}, nil
	case "idempotency":
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, eventstore.ErrIdempotency)
	case "wrong_expected_revision":
		actual := "no stream"
		if r.revision != nil {
			actual = fmt.Sprintf("revision %d", *r.revision)
		}
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: expected %v, stream at %s: %w",
			stream, expected, actual, eventstore.ErrWrongExpectedRevision)
	}
	return eventstore.AppendResult{}, fmt.Errorf("append to %s: unexpected answer %q from the database", stream, deref(r.status))
}

// expectedCode encodes expected for append_events.
func expectedCode(stream string, expected eventstore.ExpectedRevision) (int64, error) {
	switch e := expected.(type) {
	case eventstore.Any:
		return expectAny, nil
	case eventstore.NoStream:
		return expectNoStream, nil
	case eventstore.StreamExists:
		return expectStreamExists, nil
	case eventstore.Revision:
		if uint64(e) > math.MaxInt64 { // no stream gets that long
			return 0, fmt.Errorf("append to %s: expected %v, beyond any stream: %w", stream, e, eventstore.ErrWrongExpectedRevision)
		}
		return int64(e), nil
	}
	return 0, fmt.Errorf("append to %s: unknown expected revision %T: %w", stream, expected, eventstore.ErrInvalidAppend)
}

// appendArgs are the events as the columns append_events takes, so that any
// number of events travel in one statement.
type appendArgs struct {
	ids      [][16]byte // not uuid.UUID: pgx would encode it through its String method
	types    []string
	data     [][]byte // sent as jsonb; nil metadata becomes NULL
	metadata [][]byte
}

func newAppendArgs(events []eventstore.EventData) appendArgs {
	a := appendArgs{
		ids:      make([][16]byte, len(events)),
		types:    make([]string, len(events)),
		data:     make([][]byte, len(events)),
		metadata: make([][]byte, len(events)),
	}
	for i, e := range events {
		a.ids[i], a.types[i], a.data[i], a.metadata[i] = e.ID, e.Type, e.Data, e.Metadata
	}
	return a
}

// appendError wraps a failure of the database. Data exceptions mean it
// refused the content (JSON with \u0000, text with a NUL byte), which
// CheckAppend lets through: the append is invalid, not the store broken.
func appendError(stream string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		return fmt.Errorf("append to %s: %w: %w", stream, eventstore.ErrInvalidAppend, err)
	}
	return fmt.Errorf("append to %s: %w", stream, err)
}

func violates(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
