// Package memberships is the read model of a person's workspaces and of the
// role and status that decide their permissions in each. The permission
// check runs on every page load, so it is one primary-key lookup, and a role
// change shows in it as soon as the projection applies the event.
//
// Only people who have joined a workspace have a row (active or suspended).
// A pending invitation has none: an invited person is not a member yet, so
// GET /me/workspaces does not list the workspace and its permission check
// answers "not found" until they accept. Listing invitations there would
// offer workspaces that every other endpoint answers with 404.
//
// The tables are made by migrations/00004_memberships.sql (the SQL function
// memberships_create_tables).
package memberships

import (
	"context"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Projection builds the memberships. Its zero value is ready to use.
type Projection struct{}

var _ projections.Projection = (*Projection)(nil)

// New returns the memberships projection.
func New() *Projection { return &Projection{} }

// Name is the checkpoint key: never rename it.
func (*Projection) Name() string { return "memberships" }

// Tables lists the tables the projection owns.
func (*Projection) Tables() []string { return []string{"memberships", "memberships_workspaces"} }

// CreateTables names the SQL function that creates the tables in a schema.
func (*Projection) CreateTables() string { return "memberships_create_tables" }

type key struct{ user, ws uuid.UUID }

// change is what the batch does to one membership. The stored row is never
// read: a put writes the whole row, a delete removes it, and a patch
// updates the role or status of a row if there is one (a role change of a
// pending invitation has no row to update, and must not make one).
type change struct {
	kind         changeKind
	role, status string // for a patch, "" leaves the stored value
}

type changeKind int

const (
	patch changeKind = iota
	put
	del
)

func (c *change) setRole(r string) {
	if c.kind != del {
		c.role = r
	}
}

func (c *change) setStatus(s string) {
	if c.kind != del {
		c.status = s
	}
}

type workspace struct {
	name  string
	seen  bool
	pos   domain.Position
	dirty bool
}

// Apply folds the batch into one change per membership and writes each
// table once, in one round trip after reading the workspaces' positions.
//
// Idempotency: each workspace row keeps the position of the last event
// applied to the workspace. Events reach the projection in global order, so
// an event of a workspace at or before that position was applied already
// and is skipped, deletions included.
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	var ids []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	for i := range events {
		if ws, ok := workspaceOf(events[i].Event); ok && !seen[ws] {
			seen[ws] = true
			ids = append(ids, ws)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	workspaces, err := loadWorkspaces(ctx, tx, ids)
	if err != nil {
		return err
	}
	changes := make(map[key]*change)
	at := func(user, ws uuid.UUID) *change {
		k := key{user, ws}
		c := changes[k]
		if c == nil {
			c = &change{}
			changes[k] = c
		}
		return c
	}
	for i := range events {
		ev := &events[i]
		ws, ok := workspaceOf(ev.Event)
		if !ok {
			continue
		}
		w := workspaces[ws]
		if w.seen && ev.Position.Compare(w.pos) <= 0 {
			continue // a replay
		}
		w.pos, w.seen, w.dirty = ev.Position, true, true
		switch e := ev.Event.(type) {
		case domain.WorkspaceCreated:
			w.name = e.Name
			*at(e.OwnerUserID, ws) = change{kind: put, role: string(domain.RoleAdmin), status: string(domain.StatusActive)}
		case domain.InvitationAccepted:
			*at(e.UserID, ws) = change{kind: put, role: e.Role, status: string(domain.StatusActive)}
		case domain.RoleChanged:
			at(e.UserID, ws).setRole(e.ToRole)
		case domain.MemberSuspended:
			at(e.UserID, ws).setStatus(string(domain.StatusSuspended))
		case domain.MemberReactivated:
			at(e.UserID, ws).setStatus(string(domain.StatusActive))
		case domain.MemberRemoved:
			*at(e.UserID, ws) = change{kind: del}
		}
	}
	return write(ctx, tx, workspaces, changes)
}

// workspaceOf answers the workspace of an event this projection uses.
// Invitations (until accepted), settings, logins and accounts change no
// membership.
func workspaceOf(e domain.Event) (uuid.UUID, bool) {
	switch e := e.(type) {
	case domain.WorkspaceCreated:
		return e.WorkspaceID, true
	case domain.InvitationAccepted:
		return e.WorkspaceID, true
	case domain.RoleChanged:
		return e.WorkspaceID, true
	case domain.MemberSuspended:
		return e.WorkspaceID, true
	case domain.MemberReactivated:
		return e.WorkspaceID, true
	case domain.MemberRemoved:
		return e.WorkspaceID, true
	}
	return uuid.Nil, false
}

// loadWorkspaces reads the workspaces' rows (their last applied position).
// It is the first statement of Apply, so it also sets custom plans for the
// rest of the batch (projections.QueryWithCustomPlans).
func loadWorkspaces(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*workspace, error) {
	out := make(map[uuid.UUID]*workspace, len(ids))
	for _, id := range ids {
		out[id] = &workspace{}
	}
	err := projections.QueryWithCustomPlans(ctx, tx, `SELECT workspace_id, name, pos_commit, pos_prepare
		FROM memberships_workspaces WHERE workspace_id = ANY($1)`,
		[]any{projections.PGIDs(ids)}, func(rows pgx.Rows) error {
			var id pgtype.UUID
			var name string
			var commit, prepare int64
			if err := rows.Scan(&id, &name, &commit, &prepare); err != nil {
				return err
			}
			*out[id.Bytes] = workspace{name: name, seen: true, pos: domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("memberships: read workspaces: %w", err)
	}
	return out, nil
}

const (
	upsertWorkspaces = `INSERT INTO memberships_workspaces (workspace_id, name, pos_commit, pos_prepare)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[])
		ON CONFLICT (workspace_id) DO UPDATE SET
			name = excluded.name, pos_commit = excluded.pos_commit, pos_prepare = excluded.pos_prepare`
	upsertMemberships = `INSERT INTO memberships (user_id, workspace_id, role, status)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
		ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role, status = excluded.status`
	// Deletes and patches find each row by its key with LATERAL ...
	// LIMIT 1, an index probe per key: a join plan could scan the whole
	// table (all memberships of all workspaces) for a handful of keys.
	deleteMemberships = `DELETE FROM memberships WHERE ctid = ANY (ARRAY(
		SELECT m.ctid FROM unnest($1::uuid[], $2::uuid[]) AS k(user_id, workspace_id)
		CROSS JOIN LATERAL (
			SELECT ctid FROM memberships m
			WHERE m.user_id = k.user_id AND m.workspace_id = k.workspace_id
			LIMIT 1
		) m))`
	// patchMemberships rewrites only rows that exist: a role change of a
	// pending invitation finds none and makes none.
	patchMemberships = `INSERT INTO memberships (user_id, workspace_id, role, status)
		SELECT m.user_id, m.workspace_id, coalesce(k.role, m.role), coalesce(k.status, m.status)
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS k(user_id, workspace_id, role, status)
		CROSS JOIN LATERAL (
			SELECT user_id, workspace_id, role, status FROM memberships m
			WHERE m.user_id = k.user_id AND m.workspace_id = k.workspace_id
			LIMIT 1
		) m
		ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role, status = excluded.status`
)

type columns struct {
	user, ws     []pgtype.UUID
	role, status []pgtype.Text
}

func (c *columns) add(k key, role, status string) {
	c.user, c.ws = append(c.user, projections.PGID(k.user)), append(c.ws, projections.PGID(k.ws))
	c.role = append(c.role, pgtype.Text{String: role, Valid: role != ""})
	c.status = append(c.status, pgtype.Text{String: status, Valid: status != ""})
}

// write sends every write of the batch in one round trip.
func write(ctx context.Context, tx pgx.Tx, workspaces map[uuid.UUID]*workspace, changes map[key]*change) error {
	var (
		puts, patches  columns
		delUser, delWS []pgtype.UUID
		wID            []pgtype.UUID
		wName          []string
		wCommit, wPrep []int64
	)
	for k, c := range changes {
		switch {
		case c.kind == put:
			puts.add(k, c.role, c.status)
		case c.kind == del:
			delUser, delWS = append(delUser, projections.PGID(k.user)), append(delWS, projections.PGID(k.ws))
		case c.role != "" || c.status != "":
			patches.add(k, c.role, c.status)
		}
	}
	for id, w := range workspaces {
		if !w.dirty {
			continue
		}
		if w.pos.Commit > math.MaxInt64 || w.pos.Prepare > math.MaxInt64 {
			return fmt.Errorf("memberships: position %s does not fit a bigint", w.pos)
		}
		wID, wName = append(wID, projections.PGID(id)), append(wName, w.name)
		wCommit, wPrep = append(wCommit, int64(w.pos.Commit)), append(wPrep, int64(w.pos.Prepare))
	}
	b := &pgx.Batch{}
	if len(wID) > 0 {
		b.Queue(upsertWorkspaces, wID, wName, wCommit, wPrep)
	}
	if len(puts.user) > 0 {
		b.Queue(upsertMemberships, puts.user, puts.ws, puts.role, puts.status)
	}
	if len(delUser) > 0 {
		b.Queue(deleteMemberships, delUser, delWS)
	}
	if len(patches.user) > 0 {
		b.Queue(patchMemberships, patches.user, patches.ws, patches.role, patches.status)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("memberships: write: %w", err)
	}
	return nil
}
