package projections

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
)

// Replayer is a read model whose rebuild folds the whole history in
// memory before writing anything: Rebuild's replay phase then hands every
// batch to a Replay instead of Apply, and writes the result once, by COPY,
// into the empty tables. Apply, row by row, reads back and rewrites a row
// as often as events change it (an invitation, its e-mail, its acceptance,
// role changes: one row, many writes); a Replay keeps the rows in memory
// until the history is folded, so each final row is written once, as a
// bulk load does. The catch-up and the swap apply what follows with Apply,
// on the rows the Replay wrote, so the two must agree: the rebuild tests
// compare a rebuild with the live tables Apply made (pgtest.CheckRebuild).
//
// The price is memory: the Replay holds the rows of the read model that
// may still change until it writes them (each read model documents how
// much).
type Replayer interface {
	ReadModel
	// NewReplay starts an empty fold: the history from its start, into
	// tables that are empty.
	NewReplay() Replay
}

// Replay folds a history from its start in memory (Replayer).
type Replay interface {
	// Fold folds a batch of events, in global order, after those folded
	// before; the same batches Apply would get. It may write in tx (the
	// batch's transaction, search_path as for Write) what the fold knows
	// to be final, so as not to hold it in memory until the end (the
	// history's closed intervals).
	Fold(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error
	// Write writes the rows folded so far into the read model's empty
	// tables, in tx, whose search_path leads to them (unqualified names,
	// as Apply uses). It is called once, after the last Fold.
	Write(ctx context.Context, tx pgx.Tx) error
}
