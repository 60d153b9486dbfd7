package domain

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is where an event stands in the global order of the event store.
// It has two parts because both stores we support need two: EventStoreDB's
// commit and prepare positions, and in PostgreSQL the writing transaction's id
// and the event's sequence number (ordering by transaction id first is what
// keeps subscribers from skipping events that commit out of order).
// Positions compare by Commit, then Prepare. The zero Position lies before
// every event.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Commit < q.Commit:
		return -1
	case p.Commit > q.Commit:
		return 1
	case p.Prepare < q.Prepare:
		return -1
	case p.Prepare > q.Prepare:
		return 1
	}
	return 0
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool { return p.Compare(q) < 0 }

// IsZero reports whether p is the start of the global order.
func (p Position) IsZero() bool { return p == Position{} }

// String renders the opaque form handed to API clients.
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 10) + "-" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads the form String writes, and only that: a position has
// one spelling (no leading zeros), so that a client's copy compares equal
// as text too.
func ParsePosition(s string) (Position, error) {
	c, q, ok := strings.Cut(s, "-")
	if !ok {
		return Position{}, fmt.Errorf("position %q: want <commit>-<prepare>", s)
	}
	commit, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: commit: %w", s, err)
	}
	prepare, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: prepare: %w", s, err)
	}
	p := Position{Commit: commit, Prepare: prepare}
	if p.String() != s {
		return Position{}, fmt.Errorf("position %q: want %s, without leading zeros", s, p)
	}
	return p, nil
}
