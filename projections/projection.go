// Package projections builds PostgreSQL read models from the event history.
// A Runner feeds one Projection: it subscribes from the projection's
// checkpoint, applies events in batches, and writes the rows and the new
// checkpoint in one transaction. Rebuild replays a ReadModel into fresh
// tables (building the secondary indexes of a DeferredIndexes read model
// only after the replay) and swaps them in; a Waiter lets a read wait until
// the projections it uses have caught up with a write. Each read model lives
// in its own package (userlist, memberships, audit) with its event handlers
// and its SQL; Positions makes their Apply idempotent, and Handling declares
// what each does with every event type.
package projections

import (
	"context"

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
	// CreateTables is the SQL function (made by the projection's migration)
	// that creates those tables, with their indexes and triggers, in the
	// schema named by its one text argument. It must create nothing else in
	// that schema: a rebuild moves the tables (with what they own) to public
	// and then drops the schema, refusing to if anything is left. A
	// projection that implements DeferredIndexes gives it a second argument.
	CreateTables() string
	// Handling declares the event types the read model applies and those
	// it ignores: every registered type, each once (Handling.Check).
	Handling() Handling
}

// DeferredIndexes is implemented by a projection whose tables have
// secondary indexes: indexes its readers need but Apply does not. A rebuild
// inserts the whole history, and keeping such indexes up to date row by row
// is a large part of its cost, while building one over the full table is a
// single sort (or, for GIN, a bulk build). So, for such a projection,
// Rebuild
//
//  1. calls the CreateTables function with a second argument, false: with
//     it, the function creates the tables with only what Apply needs, to
//     be correct and to stay fast: primary keys, the unique keys its
//     idempotency and ON CONFLICT rely on, every index its own queries read,
//     and the constraints and triggers (an append-only table must never be
//     without its triggers), but none of the secondary indexes;
//  2. replays the history into them (phase RebuildReplay);
//  3. calls the CreateIndexes function with the schema, then ANALYZEs the
//     tables (RebuildIndexes, which the log and the usersd progress bar
//     show as "building indexes");
//  4. applies the events appended meanwhile (RebuildCatchUp), now with
//     every index in place;
//  5. swaps the tables in (RebuildSwap). The indexes are built before the
//     swap takes any lock, so the swap is as short as without them, and the
//     live tables arrive with fresh statistics.
//
// With one argument, or true as the second, the CreateTables function must
// still create everything, secondary indexes included: that is what the
// migration calls for the live tables. It does so by calling the
// CreateIndexes function itself, so that each index is defined once and a
// rebuild ends with exactly the live tables' indexes.
type DeferredIndexes interface {
	// CreateIndexes is the SQL function (made by the projection's
	// migration) that creates the secondary indexes on the tables in the
	// schema named by its one text argument. Like CreateTables, it must
	// create nothing that the tables do not own.
	CreateIndexes() string
}

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
