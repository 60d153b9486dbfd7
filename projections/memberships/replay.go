package memberships

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

var _ projections.Replayer = (*Projection)(nil)

var _ projections.MemoryFold = (*replay)(nil)

// NewReplay implements projections.Replayer: a rebuild folds the history
// into the three tables' rows in memory and COPYs each final row once.
//
// Memory: every row, about 150 bytes per membership and per account with
// the map entries.
func (p *Projection) NewReplay() projections.Replay {
	return &replay{
		pos:      projections.NewReplayPositions(),
		names:    make(map[uuid.UUID]string),
		members:  make(map[key]*member),
		accounts: make(map[uuid.UUID]*account),
	}
}

// replay is the tables as Apply would leave them after the events folded
// so far, applied one by one.
type replay struct {
	pos      *projections.ReplayPositions
	names    map[uuid.UUID]string // the workspaces' names
	members  map[key]*member
	accounts map[uuid.UUID]*account
	accOrder []uuid.UUID
}

// member is a memberships row.
type member struct{ role, status string }

// FoldsInMemory implements projections.MemoryFold: Fold writes nothing.
func (r *replay) FoldsInMemory() {}

// Fold implements projections.Replay; it writes nothing until Write.
func (r *replay) Fold(_ context.Context, _ pgx.Tx, events []domain.RecordedEvent) error {
	return r.pos.Fold(events, handling, func(ev *domain.RecordedEvent) error {
		if !applyAccount(r.accounts, &r.accOrder, ev) {
			return projections.ErrNoCase("memberships", ev.Event)
		}
		return nil
	}, func(ws uuid.UUID, ev *domain.RecordedEvent) error {
		if !r.apply(ws, ev) {
			return projections.ErrNoCase("memberships", ev.Event)
		}
		return nil
	})
}

// apply folds one workspace event as applyEvent and write do: a put
// writes the row, a patch changes a row only if there is one.
func (r *replay) apply(ws uuid.UUID, ev *domain.RecordedEvent) bool {
	patch := func(user uuid.UUID, f func(m *member)) {
		if m := r.members[key{user, ws}]; m != nil {
			f(m)
		}
	}
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		r.names[ws] = e.Name
		r.members[key{e.OwnerUserID, ws}] = &member{role: string(domain.RoleAdmin), status: string(domain.StatusActive)}
	case domain.InvitationAccepted:
		r.members[key{e.UserID, ws}] = &member{role: e.Role, status: string(domain.StatusActive)}
	case domain.RoleChanged:
		patch(e.UserID, func(m *member) { m.role = e.ToRole })
	case domain.RoleGrantExpired:
		patch(e.UserID, func(m *member) { m.role = e.ToRole })
	case domain.MemberSuspended:
		patch(e.UserID, func(m *member) { m.status = string(domain.StatusSuspended) })
	case domain.MemberReactivated:
		patch(e.UserID, func(m *member) { m.status = string(domain.StatusActive) })
	case domain.MemberRemoved:
		delete(r.members, key{e.UserID, ws})
	default:
		return false
	}
	return true
}

// Write implements projections.Replay: one COPY per table.
func (r *replay) Write(ctx context.Context, tx pgx.Tx) error {
	var rows [][]any
	if err := r.pos.Each(func(ws uuid.UUID, commit, prepare int64) error {
		rows = append(rows, []any{projections.PGID(ws), r.names[ws], commit, prepare})
		return nil
	}); err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	if err := copyRows(ctx, tx, "memberships_workspaces", []string{"workspace_id", "name", "pos_commit", "pos_prepare"}, rows); err != nil {
		return err
	}
	rows = make([][]any, 0, len(r.members))
	for k, m := range r.members {
		rows = append(rows, []any{projections.PGID(k.user), projections.PGID(k.ws), m.role, m.status})
	}
	if err := copyRows(ctx, tx, "memberships", []string{"user_id", "workspace_id", "role", "status"}, rows); err != nil {
		return err
	}
	rows = make([][]any, 0, len(r.accOrder))
	for _, id := range r.accOrder {
		a := r.accounts[id]
		rows = append(rows, []any{projections.PGID(id), pgtype.Text{String: a.email, Valid: a.email != ""}, a.deleted})
	}
	return copyRows(ctx, tx, "memberships_accounts", []string{"user_id", "email", "deleted_at"}, rows)
}

func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, rows [][]any) error {
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("memberships: copy %s: %w", table, err)
	}
	return nil
}
