package userlist

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

// NewReplay implements projections.Replayer: a rebuild folds the whole
// history into the list's rows in memory and COPYs each final row once.
//
// Memory: every row of the three tables; measured, the Go heap grew by
// about 105 MB rebuilding the benchmark's 1,000,000 events (220,000 rows
// in 1,000 workspaces; docs/decisions.md).
func (p *Projection) NewReplay() projections.Replay {
	return &replay{
		pos:        projections.NewReplayPositions(),
		workspaces: make(map[uuid.UUID]*workspace),
		members:    make(map[key]*Member),
		logins:     make(map[key]pgtype.Timestamptz),
		byUser:     make(map[uuid.UUID][]uuid.UUID),
	}
}

// replay is the list as the events folded so far leave it: the rows the
// tables would hold had Apply applied them one by one. Apply's batches
// agree with that whatever their size (the tests of every batching), so
// the catch-up's Apply goes on from these rows as from its own.
type replay struct {
	pos        *projections.ReplayPositions
	workspaces map[uuid.UUID]*workspace
	// members are the userlist_users rows; logins the userlist_logins
	// rows (an invalid time: NULL, never logged in).
	members map[key]*Member
	logins  map[key]pgtype.Timestamptz
	// byUser lists the workspaces where a person got a row (maybe
	// twice, or gone since: deleting twice is harmless): what an
	// AccountDeleted looks through, rather than every row.
	byUser map[uuid.UUID][]uuid.UUID
}

// FoldsInMemory implements projections.MemoryFold: Fold writes nothing.
func (r *replay) FoldsInMemory() {}

// Fold implements projections.Replay.
// It writes nothing until Write: any row may change until the end.
func (r *replay) Fold(_ context.Context, _ pgx.Tx, events []domain.RecordedEvent) error {
	return r.pos.Fold(events, handling, r.account, func(ws uuid.UUID, ev *domain.RecordedEvent) error {
		w := r.workspaces[ws]
		if w == nil {
			w = &workspace{}
			r.workspaces[ws] = w
		}
		if !r.apply(ev, w) {
			return projections.ErrNoCase("userlist", ev.Event)
		}
		return nil
	})
}

// account folds an event of no workspace: an AccountDeleted drops the
// person's rows everywhere, as Apply's DELETE by user does.
func (r *replay) account(ev *domain.RecordedEvent) error {
	e, ok := ev.Event.(domain.AccountDeleted)
	if !ok {
		return projections.ErrNoCase("userlist", ev.Event)
	}
	for _, ws := range r.byUser[e.UserID] {
		k := key{ws, e.UserID}
		delete(r.members, k)
		delete(r.logins, k)
	}
	delete(r.byUser, e.UserID)
	return nil
}

// apply folds one workspace event into the rows, by the rules batch.apply
// follows, each event's writes done before the next, as Apply's statements
// would leave the tables.
func (r *replay) apply(ev *domain.RecordedEvent, w *workspace) bool {
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		w.created(e, ev)
	case domain.UserLoggedIn:
		// raiseLogins: the later of the stored login and this one, a row
		// made if there was none.
		k := key{e.WorkspaceID, e.UserID}
		at, ok := r.logins[k]
		if !ok {
			r.noteUser(k)
		}
		if later(e.LoggedInAt, at) {
			at = pgtype.Timestamptz{Time: e.LoggedInAt, Valid: true}
		}
		r.logins[k] = at
		return true
	}
	ws, user, ok := projections.PersonOf(ev.Event)
	if !ok {
		return false
	}
	k := key{ws, user}
	m, present := r.members[k]
	if !present {
		m = &Member{}
	}
	change, ok := Next(m, present, ev)
	switch change {
	case Started:
		// setLogins with NULL: a new row has no login yet.
		if !present {
			r.members[k] = m
			r.noteUser(k)
		}
		r.logins[k] = pgtype.Timestamptz{}
	case Ended:
		delete(r.members, k)
		delete(r.logins, k)
	}
	return ok
}

// noteUser notes that the person has a row in the workspace.
func (r *replay) noteUser(k key) {
	r.byUser[k.user] = append(r.byUser[k.user], k.ws)
}

// Write implements projections.Replay: one COPY per table.
func (r *replay) Write(ctx context.Context, tx pgx.Tx) error {
	var workspaces [][]any
	if err := r.pos.Each(func(id uuid.UUID, commit, prepare int64) error {
		w := r.workspaces[id]
		workspaces = append(workspaces, []any{projections.PGID(id), w.name, w.createdAt, commit, prepare})
		return nil
	}); err != nil {
		return fmt.Errorf("userlist: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"userlist_workspaces"},
		[]string{"workspace_id", "name", "created_at", "pos_commit", "pos_prepare"}, pgx.CopyFromRows(workspaces)); err != nil {
		return fmt.Errorf("userlist: copy userlist_workspaces: %w", err)
	}

	members := make([][]any, 0, len(r.members))
	for k, m := range r.members {
		members = append(members, []any{projections.PGID(k.ws), projections.PGID(k.user), m.Email, m.Name, m.Role, m.Status,
			m.InvitationID, m.InvitedAt, m.InvitedBy, m.ExpiresAt, m.Expired, m.Attempt, m.EmailStatus, m.RoleUntil})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"userlist_users"},
		[]string{"workspace_id", "user_id", "email", "name", "role", "status",
			"invitation_id", "invited_at", "invited_by", "expires_at", "expired", "attempt", "email_status", "role_until"},
		pgx.CopyFromRows(members)); err != nil {
		return fmt.Errorf("userlist: copy userlist_users: %w", err)
	}

	logins := make([][]any, 0, len(r.logins))
	for k, at := range r.logins {
		logins = append(logins, []any{projections.PGID(k.ws), projections.PGID(k.user), at})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"userlist_logins"},
		[]string{"workspace_id", "user_id", "last_login_at"}, pgx.CopyFromRows(logins)); err != nil {
		return fmt.Errorf("userlist: copy userlist_logins: %w", err)
	}
	return nil
}
