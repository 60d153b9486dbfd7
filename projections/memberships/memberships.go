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
// The tables are defined in tables.sql, beside this file.
package memberships

import (
	"context"
	"embed"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Projection builds the memberships.
type Projection struct{ projections.Declaration }

// New returns the memberships projection.
func New() *Projection {
	return &Projection{projections.Declare("memberships", []string{"memberships", "memberships_workspaces", "memberships_accounts"},
		projections.SchemaFiles(sqlFiles), handling)}
}

// sqlFiles are the tables' DDL (tables.sql, indexes.sql).
//
//go:embed *.sql
var sqlFiles embed.FS

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

// handling: the events that make, change or end a membership, and those
// that make or delete an account. Invitations (until accepted), settings,
// logins, webhooks, the audit's records and the access reviews change none.
var handling = projections.Handling{
	Applies: projections.EventsOf(
		domain.WorkspaceCreated{}, domain.InvitationAccepted{}, domain.RoleChanged{}, domain.RoleGrantExpired{},
		domain.MemberSuspended{}, domain.MemberReactivated{}, domain.MemberRemoved{},
		domain.AccountRegistered{}, domain.AccountDeleted{},
	),
	Ignores: projections.EventsOf(
		domain.UserInvited{}, domain.InvitationResent{}, domain.InvitationRevoked{},
		domain.InvitationExpired{}, domain.InvitationEmailSent{}, domain.InvitationEmailFailed{},
		domain.WorkspaceSettingsChanged{}, domain.UserLoggedIn{},
		domain.AuditDivergenceAccepted{}, domain.RoleGrantExpiryRefused{},
		domain.AccessReviewStarted{}, domain.AccessReviewItemDecided{}, domain.AccessReviewCompleted{},
		domain.WebhookSubscribed{}, domain.WebhookRemoved{}, domain.WebhookReplayRequested{},
	),
}

// account is what a batch does to one account's row.
type account struct {
	email   string
	deleted pgtype.Timestamptz
}

// Apply folds the batch into one change per membership and writes each
// table once, in one round trip after reading the workspaces' positions,
// which make it idempotent (projections.Positions).
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	names := make(map[uuid.UUID]string)
	var name string
	pos, err := projections.LoadPositions(ctx, tx, events, handling,
		"memberships_workspaces", "name", []any{&name}, func(ws uuid.UUID) { names[ws] = name })
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	changes := make(map[key]*change)
	for _, ev := range pos.Live() {
		if !applyEvent(changes, names, ev) {
			return projections.ErrNoCase("memberships", ev.Event)
		}
	}
	accounts := make(map[uuid.UUID]*account)
	var order []uuid.UUID
	for _, ev := range pos.Accounts() {
		if !applyAccount(accounts, &order, ev) {
			return projections.ErrNoCase("memberships", ev.Event)
		}
	}
	if err := write(ctx, tx, pos, names, changes); err != nil {
		return err
	}
	return writeAccounts(ctx, tx, accounts, order)
}

// entry is m's value at k, a new zero one (added true) when m had none.
func entry[K comparable, V any](m map[K]*V, k K) (v *V, added bool) {
	if v = m[k]; v == nil {
		v, added = new(V), true
		m[k] = v
	}
	return v, added
}

// applyAccount folds one event of no workspace into the accounts; false
// for a type it has no case for.
func applyAccount(accounts map[uuid.UUID]*account, order *[]uuid.UUID, ev *domain.RecordedEvent) bool {
	at := func(user uuid.UUID) *account {
		a, added := entry(accounts, user)
		if added {
			*order = append(*order, user)
		}
		return a
	}
	switch e := ev.Event.(type) {
	case domain.AccountRegistered:
		// An erased person's address reads as "" (rec.Erased): kept as
		// none, like a deleted account's.
		if a := at(e.UserID); !a.deleted.Valid {
			a.email = e.Email
		}
	case domain.AccountDeleted:
		// The first deletion's time stays, as upsertAccounts keeps it.
		a := at(e.UserID)
		a.email = ""
		if !a.deleted.Valid {
			a.deleted = pgtype.Timestamptz{Time: e.DeletedAt, Valid: true}
		}
	default:
		return false
	}
	return true
}

// upsertAccounts is idempotent without positions: a registration again
// changes nothing (an account's address never changes), a deletion keeps
// the first deletion's time and clears the address for good: only a first
// deletion updates a stored row. A MERGE, as upsertWorkspaces.
const upsertAccounts = `MERGE INTO memberships_accounts a
	USING (SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS k(user_id, email, deleted_at)) k
	ON a.user_id = k.user_id
	WHEN MATCHED AND k.deleted_at IS NOT NULL AND a.deleted_at IS NULL THEN UPDATE SET email = NULL, deleted_at = k.deleted_at
	WHEN NOT MATCHED THEN INSERT (user_id, email, deleted_at) VALUES (k.user_id, k.email, k.deleted_at)`

func writeAccounts(ctx context.Context, tx pgx.Tx, accounts map[uuid.UUID]*account, order []uuid.UUID) error {
	if len(order) == 0 {
		return nil
	}
	ids, emails, deleted := make([]pgtype.UUID, len(order)), make([]pgtype.Text, len(order)), make([]pgtype.Timestamptz, len(order))
	for i, id := range order {
		a := accounts[id]
		ids[i], emails[i], deleted[i] = projections.PGID(id), pgtype.Text{String: a.email, Valid: a.email != ""}, a.deleted
	}
	if _, err := tx.Exec(ctx, upsertAccounts, ids, emails, deleted); err != nil {
		return fmt.Errorf("memberships: write accounts: %w", err)
	}
	return nil
}

// applyEvent folds one event into the changes (and a workspace's name into
// names); false for a type it has no case for.
func applyEvent(changes map[key]*change, names map[uuid.UUID]string, ev projections.WorkspaceEvent) bool {
	ws := ev.Workspace
	at := func(user uuid.UUID) *change {
		c, _ := entry(changes, key{user, ws})
		return c
	}
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		names[ws] = e.Name
		*at(e.OwnerUserID) = change{kind: put, role: string(domain.RoleAdmin), status: string(domain.StatusActive)}
	case domain.InvitationAccepted:
		*at(e.UserID) = change{kind: put, role: e.Role, status: string(domain.StatusActive)}
	case domain.RoleChanged:
		at(e.UserID).setRole(e.ToRole)
	case domain.RoleGrantExpired:
		at(e.UserID).setRole(e.ToRole)
	case domain.MemberSuspended:
		at(e.UserID).setStatus(string(domain.StatusSuspended))
	case domain.MemberReactivated:
		at(e.UserID).setStatus(string(domain.StatusActive))
	case domain.MemberRemoved:
		*at(e.UserID) = change{kind: del}
	default:
		return false
	}
	return true
}

const (
	// MERGEs, not INSERT ... ON CONFLICT, which inserts speculatively (a
	// confirmation record per new row) and writes a lock record for each
	// row it updates (as the user list's writes).
	upsertWorkspaces = `MERGE INTO memberships_workspaces w
		USING (SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS k(workspace_id, name, pos_commit, pos_prepare)) k
		ON w.workspace_id = k.workspace_id
		WHEN MATCHED THEN UPDATE SET name = k.name, pos_commit = k.pos_commit, pos_prepare = k.pos_prepare
		WHEN NOT MATCHED THEN INSERT (workspace_id, name, pos_commit, pos_prepare) VALUES (k.workspace_id, k.name, k.pos_commit, k.pos_prepare)`
	upsertMemberships = `MERGE INTO memberships m
		USING (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS k(user_id, workspace_id, role, status)) k
		ON m.user_id = k.user_id AND m.workspace_id = k.workspace_id
		WHEN MATCHED THEN UPDATE SET role = k.role, status = k.status
		WHEN NOT MATCHED THEN INSERT (user_id, workspace_id, role, status) VALUES (k.user_id, k.workspace_id, k.role, k.status)`
	// Patches find each row by its key with LATERAL ... LIMIT 1, an index
	// probe per key, as deletes do (projections.DeleteByKeys).
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
func write(ctx context.Context, tx pgx.Tx, pos *projections.Positions, names map[uuid.UUID]string, changes map[key]*change) error {
	var (
		puts, patches  columns
		delUser, delWS []pgtype.UUID
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
	wID, wCommit, wPrep, err := pos.Moved()
	if err != nil {
		return fmt.Errorf("memberships: %w", err)
	}
	wName := make([]string, len(wID))
	for i, id := range wID {
		wName[i] = names[id.Bytes]
	}
	b := &pgx.Batch{}
	if len(wID) > 0 {
		b.Queue(upsertWorkspaces, wID, wName, wCommit, wPrep)
	}
	if len(puts.user) > 0 {
		b.Queue(upsertMemberships, puts.user, puts.ws, puts.role, puts.status)
	}
	if len(delUser) > 0 {
		b.Queue(projections.DeleteByKeys("memberships", "user_id", "workspace_id"), delUser, delWS)
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
