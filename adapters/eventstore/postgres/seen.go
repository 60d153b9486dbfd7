package postgres

import (
	"hash/maphash"
	"sync"
)

// seenRevisions remembers, for recently used streams, a revision known to be
// stored. Events are never deleted, so a revision once seen stays true, and
// an append expecting exactly that revision needs no lookup: the primary key
// alone refuses it if another append got there first. A stale entry (the
// stream has moved on) is harmless, as the insert then fails on that key.
//
// It is a fixed-size direct-mapped cache: a stream whose slot is taken by
// another stream is simply looked up in the database again.
type seenRevisions struct {
	seed    maphash.Seed
	locks   [64]sync.Mutex // striped over the slots
	entries [4096]seenRevision
}

type seenRevision struct {
	stream   string
	revision uint64
}

func newSeenRevisions() *seenRevisions { return &seenRevisions{seed: maphash.MakeSeed()} }

func (c *seenRevisions) slot(stream string) (*sync.Mutex, *seenRevision) {
	i := maphash.String(c.seed, stream) % uint64(len(c.entries))
	return &c.locks[i%uint64(len(c.locks))], &c.entries[i]
}

// get returns the highest revision of stream seen, if remembered.
func (c *seenRevisions) get(stream string) (uint64, bool) {
	mu, e := c.slot(stream)
	mu.Lock()
	defer mu.Unlock()
	return e.revision, e.stream == stream
}

// saw records that stream holds revision.
func (c *seenRevisions) saw(stream string, revision uint64) {
	mu, e := c.slot(stream)
	mu.Lock()
	defer mu.Unlock()
	if e.stream != stream || e.revision < revision {
		*e = seenRevision{stream: stream, revision: revision}
	}
}
