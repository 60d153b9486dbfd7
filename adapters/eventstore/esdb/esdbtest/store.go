package esdbtest

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Expected versions as the server numbers them (KurrentDB's ExpectedVersion
// and EventNumber constants).
const (
	noStream      int64 = -1
	expectAny     int64 = -2
	streamExists  int64 = -4
	deletedStream int64 = math.MaxInt64
)

// Record sizes: every record takes a header of recordHeader bytes plus its
// names and payloads, so that positions are byte offsets in a log, as on a
// real server, and vary with what is written.
const (
	recordHeader = 96
	epochSize    = 128 // the epoch log record, which is no event
)

// record is one record of the transaction log: an event, or an epoch
// record (event false) that takes room in the log but is never read.
type record struct {
	index       int // in the log
	event       bool
	id          uuid.UUID
	stream      string
	revision    int64
	position    uint64 // prepare position; the commit position is the same
	size        uint64
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
	created     time.Time
	committedAt time.Time
	// truncateBefore is the "$tb" of a stream metadata event ("$$stream"),
	// or -1.
	truncateBefore int64
}

func (r *record) next() uint64 { return r.position + r.size }

// tfpos is a position in the log, compared as KurrentDB's TFPos: commit
// first, then prepare. headOfTf (-1, -1) is before everything.
type tfpos struct{ commit, prepare int64 }

var headOfTf = tfpos{-1, -1}

func (a tfpos) less(b tfpos) bool {
	return a.commit < b.commit || (a.commit == b.commit && a.prepare < b.prepare)
}

func posOf(r *record) tfpos { return tfpos{int64(r.position), int64(r.position)} }

// streamLog holds the events of one stream, by revision, and its tombstone.
type streamLog struct {
	events    []*record
	tombstone *record
}

// view returns the events of the stream among the first v records of the
// log, whether it was tombstoned there, and its last revision (noStream if
// none; deletedStream once tombstoned).
func (sl *streamLog) view(v int) (events []*record, last int64, tombstoned bool) {
	if sl == nil {
		return nil, noStream, false
	}
	n := sort.Search(len(sl.events), func(i int) bool { return sl.events[i].index >= v })
	events = sl.events[:n]
	last = int64(n) - 1
	if sl.tombstone != nil && sl.tombstone.index < v {
		return events, deletedStream, true
	}
	return events, last, false
}

// metaStream names the metadata stream of a stream, as "$$" + its name.
func metaStream(name string) string { return "$$" + name }

// truncateBefore reads the "$tb" of a stream's metadata event, -1 without.
func truncateBefore(stream string, data []byte) int64 {
	if !strings.HasPrefix(stream, "$$") {
		return -1
	}
	var m struct {
		TB *int64 `json:"$tb"`
	}
	if json.Unmarshal(data, &m) != nil || m.TB == nil {
		return -1
	}
	return *m.TB
}

// idCache is the leader's bounded cache of recently written event ids
// (KurrentDB's IndexWriter._committedEvents): the only place where an
// append with expected revision any or stream-exists finds its ids again.
// It keeps entries in write order and drops the oldest past its byte
// budget, each entry costing what the server counts for it.
type idCache struct {
	limit   int
	bytes   int
	entries map[uuid.UUID]cacheEntry
	order   []uuid.UUID
}

type cacheEntry struct {
	stream   string
	revision int64
}

func newIDCache(limit int) *idCache {
	return &idCache{limit: limit, entries: make(map[uuid.UUID]cacheEntry)}
}

// entrySize is the server's estimate of an entry: 16 + 4 + a pointer, plus
// the stream name as a .NET string.
func entrySize(stream string) int { return 16 + 4 + 8 + 22 + 2*len(stream) }

func (c *idCache) put(id uuid.UUID, stream string, revision int64) {
	if c.limit <= 0 {
		return
	}
	if _, ok := c.entries[id]; !ok {
		c.order = append(c.order, id)
		c.bytes += entrySize(stream)
	}
	c.entries[id] = cacheEntry{stream, revision}
	for c.bytes > c.limit && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if e, ok := c.entries[old]; ok {
			c.bytes -= entrySize(e.stream)
			delete(c.entries, old)
		}
	}
}

func (c *idCache) get(id uuid.UUID) (cacheEntry, bool) {
	e, ok := c.entries[id]
	return e, ok
}

func (c *idCache) clear() {
	c.entries = make(map[uuid.UUID]cacheEntry)
	c.order = nil
	c.bytes = 0
}
