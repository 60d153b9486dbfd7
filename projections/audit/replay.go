package audit

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

var _ projections.Replayer = (*Projection)(nil)

// NewReplay implements projections.Replayer. The entries are final once
// written, so a rebuild COPYs each batch's entries as Apply does; what it
// keeps in memory is what Apply reads back at every batch: each
// workspace's chain head and the addresses remembered for the events that
// carry none. Those addresses (audit_user_emails) are written once, at
// the end, instead of once per batch that changes them. The entries, and
// so the chains, are built by the same code as Apply's, from the same
// state: the same bytes and hashes (the rebuild tests, and the swap's
// Compare, check it).
//
// Memory: a chain head per workspace and an address per (workspace,
// person) that ever had one, about 300 bytes each with the map entry
// (sealed addresses are long).
func (p *Projection) NewReplay() projections.Replay {
	return &replay{
		heads:      make(map[uuid.UUID]chainHead),
		emails:     make(map[userKey]string),
		workspaces: make(map[uuid.UUID][]uuid.UUID),
	}
}

type replay struct {
	heads      map[uuid.UUID]chainHead
	emails     map[userKey]string
	workspaces map[uuid.UUID][]uuid.UUID // state.workspaces
}

// Fold implements projections.Replay: the batch's entries, COPYed in tx.
func (r *replay) Fold(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	cands, err := candidates(events)
	if err != nil || len(cands) == 0 {
		return err
	}
	// The state Apply's load would read from the tables the replay
	// writes: the heads and addresses, and which events are stored (an
	// event at or before its chain's head only, looked up as Apply does).
	// The addresses learnt and purged change emails itself, which is
	// what audit_user_emails would hold.
	st := &state{stored: make(map[uuid.UUID]struct{}), heads: r.heads, emails: r.emails,
		learnt: make(map[userKey]string), workspaces: r.workspaces}
	if err := st.loadStored(ctx, tx, cands); err != nil {
		return err
	}
	return st.insert(ctx, tx, cands)
}

// Write implements projections.Replay: the addresses remembered.
func (r *replay) Write(ctx context.Context, tx pgx.Tx) error {
	rows := make([][]any, 0, len(r.emails))
	for k, e := range r.emails {
		rows = append(rows, []any{pgUUID(k.workspaceID), pgUUID(k.userID), e})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_user_emails"}, []string{"workspace_id", "user_id", "email"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("audit: copy audit_user_emails: %w", err)
	}
	return nil
}
