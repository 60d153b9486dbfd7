// Package projections builds PostgreSQL read models from the event history.
// A Runner feeds one Projection: it subscribes from the projection's
// checkpoint, applies events in batches, and writes the rows and the new
// checkpoint in one transaction. Rebuild replays a ReadModel into fresh
// tables (building their secondary indexes only after the replay) and
// swaps them in; a Waiter lets a read wait until
// the projections it uses have caught up with a write. Each read model lives
// in its own package (userlist, memberships, audit) with its event handlers
// and its SQL; Positions makes their Apply idempotent, and Handling declares
// what each does with every event type.
package projections

import (
	"context"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
)

// Projection is what a Runner feeds: anything that turns events into
// PostgreSQL state (a read model, the e-mail outbox).
//
// Apply runs inside the transaction that also moves the checkpoint, so a
// batch is applied whole or not at all; it must still be idempotent (keyed
// by event id or position), because a takeover after a crash may replay the
// batch the crash interrupted. Apply uses unqualified table names: the
// runner sets search_path, so the same code fills the live tables (schema
// public) and the fresh ones a rebuild swaps in.
type Projection interface {
	// Name is the projection's stable name: its checkpoint key and the name
	// of its advisory lock. Renaming it replays the whole history.
	Name() string
	// Apply applies a batch of events in global order.
	Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error
}

// ReadModel is a projection that owns tables, which Rebuild can build
// afresh from the whole history and swap in, and which declares what it
// does with every event type.
type ReadModel interface {
	Projection
	// Tables lists the tables the projection owns, which a rebuild swaps.
	Tables() []string
	// Schema is the DDL of those tables, kept beside the read model's code.
	Schema() Schema
	// Handling declares the event types the read model applies and those
	// it ignores: every registered type, each once (Handling.Check).
	Handling() Handling
}

// Declaration is what a read model declares about itself: the methods of
// ReadModel but Apply. A read model embeds one (type Projection struct{
// projections.Declaration }) made by Declare, so that its identity, its
// tables, their DDL and its handling of the event types stand in one place.
type Declaration struct {
	name     string
	tables   []string
	schema   Schema
	handling Handling
}

// Declare makes a read model's declaration. name is its checkpoint key and
// the name of its locks: renaming it replays the whole history. tables
// lists the tables it owns, in the order a rebuild's swap locks them.
func Declare(name string, tables []string, schema Schema, handling Handling) Declaration {
	return Declaration{name: name, tables: tables, schema: schema, handling: handling}
}

// Name is the read model's stable name (its checkpoint key).
func (d Declaration) Name() string { return d.name }

// Tables lists the tables the read model owns.
func (d Declaration) Tables() []string { return append([]string(nil), d.tables...) }

// Schema is the DDL of the tables.
func (d Declaration) Schema() Schema { return d.schema }

// Handling declares the event types the read model applies and ignores.
func (d Declaration) Handling() Handling { return d.handling }

// Batch is what a Source hands the runner at a time.
type Batch struct {
	Events []domain.RecordedEvent
	// Checkpoint is where to resume after this batch.
	Checkpoint domain.Position
	// CaughtUp is true when the batch reached the end of the history.
	CaughtUp bool
}

// Source follows the event history: Subscribe calls h with every event after
// from (the zero Position: from the start), in global order, until ctx ends
// or h fails, and then returns ctx's or h's error. The runner and a rebuild
// end a subscription by failing h. The event store adapters provide it.
type Source interface {
	Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(ctx context.Context, b Batch) error) error
}

// SliceSource is a history held in memory, in global order: a Source for a
// rebuild from events that are not in a store (tests, benchmarks). It
// hands out the events after from in batches, and after the last one
// waits for ctx to end, as a store's subscription waits for new events.
type SliceSource []domain.RecordedEvent

// Subscribe implements Source.
func (s SliceSource) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(context.Context, Batch) error) error {
	i := sort.Search(len(s), func(i int) bool { return from.Less(s[i].Position) })
	for {
		end := min(i+batchSize, len(s))
		b := Batch{Events: s[i:end], Checkpoint: from, CaughtUp: end == len(s)}
		if end > i {
			b.Checkpoint = s[end-1].Position
		}
		if err := h(ctx, b); err != nil {
			return err
		}
		if b.CaughtUp {
			<-ctx.Done()
			return ctx.Err()
		}
		i = end
	}
}
