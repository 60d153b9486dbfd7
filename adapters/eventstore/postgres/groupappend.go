package postgres

import (
	"context"

	"github.com/usersd/usersd/adapters/eventstore"
)

// Bounds of one group of appends: enough to cover every writer a pool
// serves, small enough that one statement stays short for the subscribers
// waiting on it (an event is readable once its transaction ends).
// groupsInFlight answers how many writes or groups may run at once: half
// the pool's connections, at least two. The pool is sized for what the
// server may run at once; while fewer writers than that write, each runs
// alone, as without grouping, and beyond it they share statements instead
// of waiting for connections. Fewer in flight (a quarter of the pool, one)
// made bigger groups but left the server's cores idle in turn: at 16
// writers on the loaded 2-core machine a quarter was below no grouping at
// all, half on a par; at 64 writers both were above it.
func groupsInFlight(maxConns int32) int {
	return max(2, int(maxConns)/2)
}

const (
	maxGroupAppends = 64
	maxGroupEvents  = 1000
)

// appendItem is an append with an exact or "no stream" expectation, the
// kinds that go in groups (appends with "any" and "stream exists" queue per
// stream in append_events instead).
type appendItem struct {
	stream   string
	expected int64 // >= 0, or expectNoStream
	args     appendArgs
}

func (s *Store) newAppendGrouper() *grouper[appendItem, appendRow] {
	return &grouper[appendItem, appendRow]{
		maxInFlight: s.inFlight, maxItems: maxGroupAppends,
		maxRows: maxGroupEvents,
		rows:    func(a appendItem) int { return len(a.args.ids) },
		// Two appends to one stream in one statement would both see its
		// revision before either: the second's check would be wrong.
		key: func(a appendItem) string { return a.stream },
		one: func(ctx context.Context, a appendItem) (appendRow, error) {
			return s.appendFast(ctx, a.stream, a.expected, a.args)
		},
		many: s.appendGroup,
	}
}

// appendGroupSQL is appendSQL's checked statement for many streams at once:
// each append inserts its events after the stream's last revision if that
// is the one it expects (NULL: no stream), and nothing otherwise, which its
// caller then takes to append_events as alone. The streams are distinct.
// Rows go in by stream name, as StartStreams inserts them, so that
// statements sharing streams take their locks in one order.
const appendGroupSQL = `INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
SELECT e.id, a.stream, a.base + e.n, e.type, e.data, e.metadata
FROM (
	SELECT g.k, g.stream, coalesce(h.revision, -1) AS base
	FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS g(stream, expected, k),
	LATERAL (SELECT max(revision) AS revision FROM events WHERE stream_id = g.stream) h
	WHERE h.revision IS NOT DISTINCT FROM g.expected
) a
JOIN unnest($3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[]) AS e(k, n, id, type, data, metadata)
	ON e.k = a.k
ORDER BY a.stream, e.n
RETURNING stream_id, revision, tx_id, position`

// appendGroup runs appends to distinct streams as one statement, so one
// transaction. An append whose expectation fails gets a row with no status,
// as from appendFast; if the statement fails, every append gets errAlone.
func (s *Store) appendGroup(ctx context.Context, items []appendItem) ([]appendRow, []error) {
	rows := make([]appendRow, len(items))
	errs := make([]error, len(items))
	streams := make([]string, len(items))
	expected := make([]*int64, len(items))
	index := make(map[string]int, len(items))
	var k, n []int64
	var ev appendArgs
	for i, it := range items {
		streams[i] = it.stream
		if it.expected >= 0 {
			expected[i] = &it.expected
		}
		index[it.stream] = i
		for j := range it.args.ids {
			k, n = append(k, int64(i+1)), append(n, int64(j+1))
		}
		ev.ids = append(ev.ids, it.args.ids...)
		ev.types = append(ev.types, it.args.types...)
		ev.data = append(ev.data, it.args.data...)
		ev.metadata = append(ev.metadata, it.args.metadata...)
	}
	failed := func(err error) ([]appendRow, []error) {
		// Each member then writes alone and gets its own answer; the
		// group's error says only why the group could not stand.
		s.log.Debug("event store: a group of appends failed as a whole; its members write alone", "appends", len(items), "err", err)
		for i := range errs {
			rows[i], errs[i] = appendRow{}, errAlone
		}
		return rows, errs
	}
	res, err := s.pool.Query(ctx, appendGroupSQL, streams, expected, k, n, ev.ids, ev.types, ev.data, ev.metadata)
	if err != nil {
		return failed(err)
	}
	inserted := make([]int, len(items))
	for res.Next() {
		var stream string
		var revision, commit, prepare int64
		if err := res.Scan(&stream, &revision, &commit, &prepare); err != nil {
			res.Close()
			return failed(err)
		}
		i := index[stream]
		inserted[i]++
		if r := &rows[i]; r.revision == nil || revision > *r.revision {
			r.revision, r.commit, r.prepare = &revision, &commit, &prepare
		}
	}
	res.Close()
	if err := res.Err(); err != nil {
		return failed(err)
	}
	woken := false
	for i, it := range items {
		if inserted[i] != len(it.args.ids) { // none: the statement is atomic
			rows[i] = appendRow{}
			continue
		}
		if !woken {
			s.appendedOne() // once for the group
			woken = true
		}
		rows[i].status, rows[i].woken = ptr("appended"), true
	}
	return rows, errs
}

// startItem is one StartStreams call, checked.
type startItem struct {
	streams []string
	args    appendArgs
}

// maxGroupStarts bounds the streams one group of StartStreams calls starts:
// two full invitation batches' reservations.
const maxGroupStarts = 1000

func (s *Store) newStartGrouper() *grouper[startItem, []bool] {
	return &grouper[startItem, []bool]{
		maxInFlight: s.inFlight, maxItems: maxGroupAppends,
		maxRows: maxGroupStarts,
		rows:    func(st startItem) int { return len(st.streams) },
		// Calls may share streams: the first in the group starts them.
		key:  func(startItem) string { return "" },
		one:  s.startStreams,
		many: s.startGroup,
	}
}

var _ eventstore.StreamStarter = (*Store)(nil)

// startGroup runs several StartStreams calls as one statement. A stream
// named by more than one call goes once, as the first call's: the others
// find it started, as they would after it. If the statement fails, every
// call gets errAlone.
func (s *Store) startGroup(ctx context.Context, items []startItem) ([][]bool, []error) {
	type where struct{ item, i int }
	out := make([][]bool, len(items))
	errs := make([]error, len(items))
	first := make(map[string]where)
	var streams []string
	var ev appendArgs
	for k, it := range items {
		out[k] = make([]bool, len(it.streams))
		for i, stream := range it.streams {
			if _, dup := first[stream]; dup {
				continue
			}
			first[stream] = where{k, i}
			streams = append(streams, stream)
			ev.ids = append(ev.ids, it.args.ids[i])
			ev.types = append(ev.types, it.args.types[i])
			ev.data = append(ev.data, it.args.data[i])
			ev.metadata = append(ev.metadata, it.args.metadata[i])
		}
	}
	started, err := s.startRows(ctx, streams, ev)
	if err != nil {
		for k := range errs {
			out[k], errs[k] = nil, errAlone
		}
		return out, errs
	}
	for stream := range started {
		w := first[stream]
		out[w.item][w.i] = true
	}
	if len(started) > 0 {
		s.appendedOne() // once for the group
	}
	return out, errs
}
