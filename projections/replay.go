package projections

import (
	"context"
	"fmt"

	"github.com/google/uuid"
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

// ReplayPositions is Positions for a Replay: where each workspace stands,
// in memory, as the workspaces' rows would say after the events folded so
// far. A Replay's Fold hands it every batch (Fold), and its Write COPYs
// the positions (Each).
type ReplayPositions struct {
	pos   map[uuid.UUID]domain.Position
	order []uuid.UUID // first seen first
}

// NewReplayPositions starts with no workspace.
func NewReplayPositions() *ReplayPositions {
	return &ReplayPositions{pos: make(map[uuid.UUID]domain.Position)}
}

// Fold hands each event of the batch that h applies, in order, to account
// if it belongs to no workspace, or else to workspace, unless it lies at
// or before its workspace's position (applied already, as Positions.Live
// skips it); then the workspace's position moves to it. It fails on an
// event type h does not declare, and with the first error of the two.
func (p *ReplayPositions) Fold(events []domain.RecordedEvent, h Handling,
	account func(ev *domain.RecordedEvent) error, workspace func(ws uuid.UUID, ev *domain.RecordedEvent) error) error {
	for i := range events {
		ev := &events[i]
		applied, err := h.Applied(ev.Event)
		if err != nil {
			return fmt.Errorf("event %s at %s: %w", ev.Metadata.EventID, ev.Position, err)
		}
		if !applied {
			continue
		}
		ws, ok := domain.WorkspaceOf(ev.Event)
		if !ok {
			if err := account(ev); err != nil {
				return err
			}
			continue
		}
		last, seen := p.pos[ws]
		switch {
		case !seen:
			p.order = append(p.order, ws)
		case ev.Position.Compare(last) <= 0:
			continue
		}
		p.pos[ws] = ev.Position
		if err := workspace(ws, ev); err != nil {
			return err
		}
	}
	return nil
}

// Each calls f with every workspace an event moved, first seen first, and
// its position as the pos_commit and pos_prepare columns.
func (p *ReplayPositions) Each(f func(ws uuid.UUID, commit, prepare int64) error) error {
	for _, ws := range p.order {
		commit, prepare, err := PositionColumns(p.pos[ws])
		if err != nil {
			return err
		}
		if err := f(ws, commit, prepare); err != nil {
			return err
		}
	}
	return nil
}

// ErrNoCase is what a read model answers for an event type it declares
// applied but has no case for.
func ErrNoCase(model string, e domain.Event) error {
	return fmt.Errorf("%s: %s is declared applied but has no case", model, domain.EventName(e))
}
