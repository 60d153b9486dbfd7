// Package projections builds PostgreSQL read models from the event history.
// A Runner feeds one Projection: it subscribes from the projection's
// checkpoint, applies events in batches, and writes the rows and the new
// checkpoint in one transaction. Rebuild replays a projection into fresh
// tables and swaps them in; a Waiter lets a read wait until the projections
// it uses have caught up with a write. Each read model lives in its own
// package (userlist, memberships, audit) with its event handlers and its SQL.
package projections

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
)

// Projection turns events into the rows of one read model.
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
	// Tables lists the tables the projection owns, which a rebuild swaps.
	Tables() []string
	// CreateTables is the SQL function (made by the projection's migration)
	// that creates those tables, with their indexes and triggers, in the
	// schema named by its one text argument. It must create nothing else in
	// that schema: a rebuild moves the tables (with what they own) to public
	// and then drops the schema, refusing to if anything is left.
	CreateTables() string
	// Apply applies a batch of events in global order.
	Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error
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
