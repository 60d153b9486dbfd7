// Package eventstore is the port between the write side and whichever store
// keeps the events: EventStoreDB in production, PostgreSQL where none runs, and
// memory for handler tests. Every implementation passes the contract suite in
// eventstoretest.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ErrWrongExpectedRevision is returned when an append's expected revision does
// not match the stream. It wraps domain.ErrConcurrency so command handlers can
// retry without knowing which store they run on.
var ErrWrongExpectedRevision = fmt.Errorf("wrong expected revision: %w", domain.ErrConcurrency)

// ErrStreamNotFound is returned when reading a stream that has no events.
var ErrStreamNotFound = errors.New("stream not found")

// ErrIdempotency is returned when some but not all of an append's event ids are
// already stored, or they are stored in another stream: the retry is not the
// same append.
var ErrIdempotency = errors.New("event ids already used by a different append")

// ErrInvalidAppend is returned, wrapped with the reason, when an append is
// malformed (no stream name, no events, an event without id or type, data that
// is not JSON). Nothing is stored.
var ErrInvalidAppend = errors.New("invalid append")

// CheckAppend reports why an append is malformed, or nil. Every store calls it
// before touching storage so that they all refuse the same input.
func CheckAppend(stream string, expected ExpectedRevision, events []EventData) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("append to %q: %s: %w", stream, fmt.Sprintf(format, args...), ErrInvalidAppend)
	}
	if stream == "" {
		return invalid("empty stream name")
	}
	if expected == nil {
		return invalid("no expected revision")
	}
	if len(events) == 0 {
		return invalid("no events")
	}
	seen := make(map[uuid.UUID]bool, len(events))
	for i, e := range events {
		switch {
		case e.ID == uuid.Nil:
			return invalid("event %d: no id", i)
		case seen[e.ID]:
			// Ids make retries idempotent; one repeated inside an append
			// could never be stored.
			return invalid("event %d: id %s repeated", i, e.ID)
		case e.Type == "":
			return invalid("event %d: no type", i)
		case !json.Valid(e.Data):
			return invalid("event %d: data is not JSON", i)
		case e.Metadata != nil && !json.Valid(e.Metadata):
			return invalid("event %d: metadata is not JSON", i)
		}
		seen[e.ID] = true
	}
	return nil
}

// ExpectedRevision is the optimistic-concurrency condition of an append.
type ExpectedRevision interface{ isExpectedRevision() }

// Any appends whatever the stream holds.
type Any struct{}

// NoStream appends only if the stream has no events.
type NoStream struct{}

// StreamExists appends only if the stream has at least one event.
type StreamExists struct{}

// Revision appends only if the stream's last event has exactly this revision
// (revisions count from zero).
type Revision uint64

func (Any) isExpectedRevision()          {}
func (NoStream) isExpectedRevision()     {}
func (StreamExists) isExpectedRevision() {}
func (Revision) isExpectedRevision()     {}

// String methods make error messages say what was expected.
func (Any) String() string          { return "any" }
func (NoStream) String() string     { return "no stream" }
func (StreamExists) String() string { return "stream exists" }
func (r Revision) String() string   { return "revision " + strconv.FormatUint(uint64(r), 10) }

// EventData is an event to append.
type EventData struct {
	ID       uuid.UUID
	Type     string
	Data     []byte // JSON
	Metadata []byte // JSON
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID        uuid.UUID
	StreamID  string
	Revision  uint64
	Position  domain.Position
	Type      string
	Data      []byte
	Metadata  []byte
	CreatedAt time.Time
}

// AppendResult tells where an append ended.
type AppendResult struct {
	// NextExpectedRevision is the revision of the stream's last event: the
	// expected revision of the next append.
	NextExpectedRevision uint64
	// Position is the global position of the last event appended.
	Position domain.Position
}

// ReadOptions selects part of a stream.
type ReadOptions struct {
	// From is the first revision read (forwards) or the last one (backwards).
	// Backwards with FromEnd starts at the stream's last event.
	From      uint64
	FromEnd   bool
	Backwards bool
	// Max caps the number of events read; zero means no cap.
	Max int
}

// Batch is what a subscription hands its handler at a time.
type Batch struct {
	Events []RecordedEvent
	// Checkpoint is the position to resume from after this batch: the last
	// event's position, or in a batch without events the last one handed
	// over before (or the subscription's start). It is never a position
	// no event was handed over at: EventStoreDB's checkpoint messages are
	// not passed on, as some server versions sent wrong ones.
	Checkpoint domain.Position
	// CaughtUp is true when the batch reached the end of the stored events at
	// the time it was read: everything appended before is now delivered.
	CaughtUp bool
}

// Handler consumes a subscription's batches. An error ends the subscription
// and is returned by SubscribeToAll.
type Handler func(ctx context.Context, b Batch) error

// SubscribeOptions tune a subscription.
type SubscribeOptions struct {
	// BatchSize caps the events in one Batch; zero means the store's default.
	BatchSize int
}

// StreamStart is the first event of a stream that may already exist.
type StreamStart struct {
	Stream string
	Event  EventData
}

// StreamStarter is a Store that starts many streams in one round trip: what
// reserving a batch of accounts needs, where appending to each address's
// stream with "no stream" expected would cost a round trip per address. It
// is optional; without it the account registry appends stream by stream.
type StreamStarter interface {
	// StartStreams appends each event as the first of its stream unless the
	// stream has events, and answers for each whether this call started it.
	// Each start is atomic; a call's starts may commit in more than one
	// transaction (a large call in chunks side by side, several calls in
	// one), so a failed call may have started some of its streams. Streams
	// must be distinct. A retry of a call whose answer was lost reports its
	// streams as not started; their first events are the retried call's own.
	StartStreams(ctx context.Context, starts []StreamStart) (started []bool, err error)
}

// CheckStarts reports why a StartStreams call is malformed (a start that
// is no valid append, a stream started twice), or nil. Every StreamStarter
// calls it before touching storage.
func CheckStarts(starts []StreamStart) error {
	seen := make(map[string]bool, len(starts))
	for _, st := range starts {
		if err := CheckAppend(st.Stream, NoStream{}, []EventData{st.Event}); err != nil {
			return err
		}
		if seen[st.Stream] {
			return fmt.Errorf("start %s twice in one call: %w", st.Stream, ErrInvalidAppend)
		}
		seen[st.Stream] = true
	}
	return nil
}

// LastEventsReader is a Store that reads the last event of many streams in
// one round trip: what looking up a batch of addresses' legacy account
// streams needs, where a read per address would cost a round trip each. It
// is optional; without it the account registry reads stream by stream.
type LastEventsReader interface {
	// LastEvents answers the last event of each stream that has one;
	// streams without events are missing from the map.
	LastEvents(ctx context.Context, streams []string) (map[string]RecordedEvent, error)
}

// Store keeps streams of events and a global order across them.
type Store interface {
	// Append adds events to the end of a stream if expected holds, all or
	// nothing. Appending events whose ids are already stored, in the same
	// stream, in the same order, succeeds without storing them twice and
	// answers the original result.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events ...EventData) (AppendResult, error)
	// ReadStream reads one stream in revision order (or reverse). A stream
	// without events answers ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, opts ReadOptions) ([]RecordedEvent, error)
	// SubscribeToAll delivers every event after from (the zero Position: from
	// the start), in global order, each exactly once, first catching up and
	// then live, until ctx ends (then it returns ctx.Err()) or h fails.
	SubscribeToAll(ctx context.Context, from domain.Position, opts SubscribeOptions, h Handler) error
}
