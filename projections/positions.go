package projections

import (
	"context"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
)

// Positions makes Apply idempotent for a read model that keeps, in a row
// per workspace, the position of the last event it applied to that
// workspace (columns pos_commit and pos_prepare). Events reach a projection
// in global order, so an event at or before its workspace's position was
// applied already, by an earlier batch or earlier in this one, and is
// skipped: a batch replayed after a crash changes nothing. That covers
// deletions too, which positions kept per row could not (a deleted row
// forgets its position).
//
// Apply makes one with LoadPositions from the batch (the first statement of
// its transaction reads the workspaces' rows), applies the events Live
// hands back, and writes the rows of the workspaces Moved lists.
type Positions struct {
	ids    []uuid.UUID // the workspaces, first seen first
	marks  map[uuid.UUID]*mark
	events []WorkspaceEvent
	// accounts are the applied events of no workspace (AccountRegistered,
	// AccountDeleted), in order: no workspace position guards them, so
	// their writes must be idempotent by themselves.
	accounts []*domain.RecordedEvent
}

// mark is where one workspace stands.
type mark struct {
	pos   domain.Position
	known bool // pos was applied: stored, or earlier in this batch
	moved bool // an event of this batch was applied: the row must be written
}

// WorkspaceEvent is an event of the batch with the workspace it belongs to.
type WorkspaceEvent struct {
	Workspace uuid.UUID
	*domain.RecordedEvent
}

// NewPositions collects the events of the batch that h applies, with their
// workspaces, and apart those of no workspace (Accounts). It fails on an
// event type h does not declare.
func NewPositions(events []domain.RecordedEvent, h Handling) (*Positions, error) {
	p := &Positions{marks: make(map[uuid.UUID]*mark)}
	for i := range events {
		ev := &events[i]
		ok, err := h.Applied(ev.Event)
		if err != nil {
			return nil, fmt.Errorf("event %s at %s: %w", ev.Metadata.EventID, ev.Position, err)
		}
		if !ok {
			continue
		}
		ws, ok := domain.WorkspaceOf(ev.Event)
		if !ok {
			p.accounts = append(p.accounts, ev)
			continue
		}
		if _, seen := p.marks[ws]; !seen {
			p.marks[ws] = &mark{}
			p.ids = append(p.ids, ws)
		}
		p.events = append(p.events, WorkspaceEvent{Workspace: ws, RecordedEvent: ev})
	}
	return p, nil
}

// LoadPositions collects the batch's events that h applies (NewPositions)
// and reads their workspaces' rows from table (Load).
func LoadPositions(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent, h Handling,
	table, extra string, dst []any, found func(ws uuid.UUID)) (*Positions, error) {
	p, err := NewPositions(events, h)
	if err != nil {
		return nil, err
	}
	return p, p.Load(ctx, tx, table, extra, dst, found)
}

// Load reads the rows of p's workspaces from table: workspace_id,
// pos_commit, pos_prepare and the extra columns (a list for SELECT, "" for
// none), which are scanned into dst and handed over with each row's
// workspace by found. It sets custom plans for the rest of the transaction
// (QueryWithCustomPlans): Apply calls it first.
func (p *Positions) Load(ctx context.Context, tx pgx.Tx, table, extra string, dst []any, found func(ws uuid.UUID)) error {
	if len(p.ids) == 0 {
		return nil
	}
	cols := "workspace_id, pos_commit, pos_prepare"
	if extra != "" {
		cols += ", " + extra
	}
	var id pgtype.UUID
	var commit, prepare int64
	targets := append([]any{&id, &commit, &prepare}, dst...)
	err := QueryWithCustomPlans(ctx, tx, "SELECT "+cols+" FROM "+table+" WHERE workspace_id = ANY($1)",
		[]any{PGIDs(p.ids)}, func(rows pgx.Rows) error {
			if err := rows.Scan(targets...); err != nil {
				return err
			}
			if m := p.marks[id.Bytes]; m != nil {
				m.pos, m.known = domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, true
				found(id.Bytes)
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	return nil
}

// Accounts returns the applied events that belong to no workspace, in
// order. Every batch hands them over, replayed ones included.
func (p *Positions) Accounts() []*domain.RecordedEvent { return p.accounts }

// Live returns the events to apply, in order: those after their
// workspace's position, which each moves on. Call it once, after Load.
func (p *Positions) Live() []WorkspaceEvent {
	live := p.events[:0:0]
	for _, ev := range p.events {
		m := p.marks[ev.Workspace]
		if m.known && ev.Position.Compare(m.pos) <= 0 {
			continue // applied already
		}
		m.pos, m.known, m.moved = ev.Position, true, true
		live = append(live, ev)
	}
	return live
}

// Moved returns the workspaces whose position Live moved, first seen first,
// with their new positions as the pos_commit and pos_prepare columns.
func (p *Positions) Moved() (ids []pgtype.UUID, commits, prepares []int64, err error) {
	for _, id := range p.ids {
		m := p.marks[id]
		if !m.moved {
			continue
		}
		commit, prepare, err := PositionColumns(m.pos)
		if err != nil {
			return nil, nil, nil, err
		}
		ids, commits, prepares = append(ids, PGID(id)), append(commits, commit), append(prepares, prepare)
	}
	return ids, commits, prepares, nil
}

// PositionColumns converts a Position to the two bigint columns that store
// it. Positions come from bigint columns, so one that does not fit is a bug
// worth an error.
func PositionColumns(p domain.Position) (commit, prepare int64, err error) {
	if p.Commit > math.MaxInt64 || p.Prepare > math.MaxInt64 {
		return 0, 0, fmt.Errorf("position %s does not fit in bigint", p)
	}
	return int64(p.Commit), int64(p.Prepare), nil
}
