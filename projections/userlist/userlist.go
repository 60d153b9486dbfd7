// Package userlist is the workspace user list read model: one row per
// person who is invited to, active in or suspended from a workspace, with
// their role, last login and, while invited, the invitation and the delivery
// status of its e-mail. Queries pages through it by name with keyset
// pagination, filtered by status, role and a text query.
//
// The tables are defined in tables.sql, beside this file: userlist_users
// (the rows), userlist_logins (each person's last login, apart because
// logins are by far the most frequent event and so touch only a narrow,
// unindexed row) and userlist_workspaces. Apply reads and writes through
// the primary keys only, so the list's indexes are in indexes.sql, which a
// rebuild builds after its replay (projections.Schema).
package userlist

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

// Email delivery statuses of an invitation's current attempt.
const (
	EmailPending = "pending"
	EmailSent    = "sent"
	EmailFailed  = "failed"
)

// Projection builds the user list.
type Projection struct{ projections.Declaration }

// New returns the user list projection: its tables, with the list's
// indexes apart (a rebuild builds them after its replay).
func New() *Projection {
	return &Projection{projections.Declare("userlist",
		[]string{"userlist_users", "userlist_logins", "userlist_workspaces"},
		projections.SchemaFiles(sqlFiles), handling)}
}

// sqlFiles are the tables' DDL (tables.sql, indexes.sql).
//
//go:embed *.sql
var sqlFiles embed.FS

type key struct{ ws, user uuid.UUID }

// member is a userlist_users row as Apply folds events into it.
type member struct {
	email       string
	name        pgtype.Text
	role        string
	status      string
	invID       pgtype.UUID
	invitedAt   pgtype.Timestamptz
	invitedBy   pgtype.UUID
	expiresAt   pgtype.Timestamptz
	expired     bool
	attempt     int32
	emailStatus pgtype.Text
	roleUntil   pgtype.Timestamptz

	// present: the row exists after the events folded so far. dirty: it
	// must be written (upserted if present, deleted if not).
	present, dirty bool
}

// replace sets the whole row, which exists after the event.
func (m *member) replace(n member) {
	n.present, n.dirty = true, true
	*m = n
}

// login is what the batch does to a userlist_logins row: reset forgets the
// stored login (a row starts anew, with none yet), gone drops the row (the
// person left the list), then at is the latest login since. Every row of
// userlist_users has its login row, NULL until a first login, so that the
// list sorted by last login reads one index that holds everyone.
type login struct {
	reset, gone bool
	at          pgtype.Timestamptz
}

// workspace is a userlist_workspaces row as Apply folds events into it
// (its position is kept by projections.Positions).
type workspace struct {
	name      pgtype.Text
	createdAt pgtype.Timestamptz
}

// batch is the state Apply folds one batch of events into.
type batch struct {
	workspaces map[uuid.UUID]*workspace
	members    map[key]*member
	logins     map[key]*login
	// deleted are the people whose account was deleted: their rows go in
	// every workspace, after the batch's other writes.
	deleted []pgtype.UUID
}

// workspace answers the row of workspace ws, new and empty if not known.
func (b *batch) workspace(ws uuid.UUID) *workspace {
	w := b.workspaces[ws]
	if w == nil {
		w = &workspace{}
		b.workspaces[ws] = w
	}
	return w
}

func (b *batch) login(k key) *login {
	l := b.logins[k]
	if l == nil {
		l = &login{}
		b.logins[k] = l
	}
	return l
}

// handling: every workspace event but the settings, which the list does
// not show, the audit's own records and the access reviews (the history
// keeps those); not AccountRegistered, which shows nothing. AccountDeleted, of no workspace, drops the person's rows
// everywhere.
var handling = projections.ApplyAllBut(domain.WorkspaceSettingsChanged{}, domain.AuditDivergenceAccepted{}, domain.AccountRegistered{},
	domain.AccessReviewStarted{}, domain.AccessReviewItemDecided{}, domain.AccessReviewCompleted{})

// Apply folds the batch into the rows it touches, in memory, and writes each
// table once: three round trips per batch (read positions, read rows,
// write) whatever its size. Logins need no read. The workspaces' positions
// make it idempotent (projections.Positions).
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	b := &batch{workspaces: make(map[uuid.UUID]*workspace), members: make(map[key]*member), logins: make(map[key]*login)}
	var stored workspace
	pos, err := projections.LoadPositions(ctx, tx, events, handling, "userlist_workspaces", "name, created_at",
		[]any{&stored.name, &stored.createdAt}, func(ws uuid.UUID) { *b.workspace(ws) = stored })
	if err != nil {
		return fmt.Errorf("userlist: %w", err)
	}
	for _, ev := range pos.Accounts() {
		if !b.apply(ev, nil) {
			return fmt.Errorf("userlist: %s is declared applied but has no case", domain.EventName(ev.Event))
		}
	}
	live := pos.Live()
	if len(live) == 0 {
		return b.write(ctx, tx, pos)
	}

	// The rows to read: those whose first event does not replace the
	// whole row.
	var loadWS, loadUser []pgtype.UUID
	for _, ev := range live {
		k, replaces, ok := memberOf(ev.Event)
		if !ok {
			continue
		}
		if _, known := b.members[k]; known {
			continue
		}
		b.members[k] = &member{}
		if !replaces {
			loadWS, loadUser = append(loadWS, projections.PGID(k.ws)), append(loadUser, projections.PGID(k.user))
		}
	}
	if len(loadWS) > 0 {
		if err := loadMembers(ctx, tx, loadWS, loadUser, b.members); err != nil {
			return err
		}
	}

	for _, ev := range live {
		if !b.apply(ev.RecordedEvent, b.workspace(ev.Workspace)) {
			return fmt.Errorf("userlist: %s is declared applied but has no case", domain.EventName(ev.Event))
		}
	}
	return b.write(ctx, tx, pos)
}

// memberOf answers the userlist_users row an event may change, and whether
// the event replaces the whole row (so the stored row need not be read).
// Logins change only userlist_logins.
func memberOf(e domain.Event) (k key, replaces, ok bool) {
	ws, user, ok := projections.PersonOf(e)
	switch e.(type) {
	case domain.UserLoggedIn:
		return key{}, false, false
	case domain.WorkspaceCreated, domain.UserInvited:
		replaces = true
	}
	return key{ws, user}, replaces, ok
}

// apply folds one event into the rows, and answers false for a type it has
// no case for. Events about a row that does not exist change nothing; so do
// delivery outcomes of an older attempt or of another invitation.
func (b *batch) apply(ev *domain.RecordedEvent, w *workspace) bool {
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		w.name = pgtype.Text{String: e.Name, Valid: true}
		w.createdAt = projections.Timestamp(e.CreatedAt, ev.Metadata.OccurredAt)
		b.members[key{e.WorkspaceID, e.OwnerUserID}].replace(member{
			email: e.OwnerEmail, name: pgtype.Text{String: e.OwnerName, Valid: e.OwnerName != ""},
			role: string(domain.RoleAdmin), status: string(domain.StatusActive),
		})
		*b.login(key{e.WorkspaceID, e.OwnerUserID}) = login{reset: true}
	case domain.UserInvited:
		// A new invitation replaces the row, and the person's last login
		// with it: after a removal there is none, and an expired invitation
		// is invited anew.
		k := key{e.WorkspaceID, e.UserID}
		b.members[k].replace(member{
			email: e.Email, role: e.Role, status: string(domain.StatusInvited),
			invID:       pgtype.UUID{Bytes: e.InvitationID, Valid: true},
			invitedAt:   projections.Timestamp(e.InvitedAt, ev.Metadata.OccurredAt),
			invitedBy:   pgtype.UUID{Bytes: e.InvitedBy, Valid: e.InvitedBy != uuid.Nil},
			expiresAt:   pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true},
			attempt:     1,
			emailStatus: pgtype.Text{String: EmailPending, Valid: true},
		})
		*b.login(k) = login{reset: true}
	case domain.InvitationResent:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil {
			m.attempt = projections.Int32(e.Attempt)
			m.expiresAt = pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true}
			m.expired = false
			m.emailStatus = pgtype.Text{String: EmailPending, Valid: true}
			m.dirty = true
		}
	case domain.InvitationRevoked:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil {
			m.present, m.dirty = false, true
			*b.login(key{e.WorkspaceID, e.UserID}) = login{gone: true}
		}
	case domain.InvitationExpired:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil {
			m.expired, m.dirty = true, true
		}
	case domain.InvitationAccepted:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil {
			// A temporary role given to the invitation goes on after it.
			m.replace(member{
				email: e.Email, name: pgtype.Text{String: e.Name, Valid: e.Name != ""},
				role: e.Role, status: string(domain.StatusActive), roleUntil: m.roleUntil,
			})
		}
	case domain.InvitationEmailSent:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil && m.attempt == projections.Int32(e.Attempt) {
			m.emailStatus, m.dirty = pgtype.Text{String: EmailSent, Valid: true}, true
		}
	case domain.InvitationEmailFailed:
		if m := b.invitation(e.WorkspaceID, e.UserID, e.InvitationID); m != nil && m.attempt == projections.Int32(e.Attempt) {
			m.emailStatus, m.dirty = pgtype.Text{String: EmailFailed, Valid: true}, true
		}
	case domain.RoleChanged:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil {
			m.role, m.dirty = e.ToRole, true
			m.roleUntil = pgtype.Timestamptz{}
			if e.Until != nil {
				m.roleUntil = pgtype.Timestamptz{Time: *e.Until, Valid: true}
			}
		}
	case domain.RoleGrantExpired:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil {
			m.role, m.roleUntil, m.dirty = e.ToRole, pgtype.Timestamptz{}, true
		}
	case domain.RoleGrantExpiryRefused:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil {
			m.roleUntil, m.dirty = pgtype.Timestamptz{}, true
		}
	case domain.MemberRemoved:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil {
			m.present, m.dirty = false, true
			*b.login(key{e.WorkspaceID, e.UserID}) = login{gone: true}
		}
	case domain.MemberSuspended:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil && m.status != string(domain.StatusInvited) {
			m.status, m.dirty = string(domain.StatusSuspended), true
		}
	case domain.MemberReactivated:
		if m := b.present(e.WorkspaceID, e.UserID); m != nil && m.status != string(domain.StatusInvited) {
			m.status, m.dirty = string(domain.StatusActive), true
		}
	case domain.AccountDeleted:
		// The removals before it dropped the person's rows already; this
		// drops what a removal missed (a row the read model got from an
		// event the command did not see), keyed by person alone.
		b.deleted = append(b.deleted, projections.PGID(e.UserID))
	case domain.UserLoggedIn:
		// The stored row is not read for a login: a login is recorded only
		// for a member (the aggregate refuses others), and a login row
		// without a member row is never shown.
		if l := b.login(key{e.WorkspaceID, e.UserID}); !l.at.Valid || e.LoggedInAt.After(l.at.Time) {
			l.at = pgtype.Timestamptz{Time: e.LoggedInAt, Valid: true}
		}
	default:
		return false
	}
	return true
}

func (b *batch) present(ws, user uuid.UUID) *member {
	if m := b.members[key{ws, user}]; m != nil && m.present {
		return m
	}
	return nil
}

// invitation answers the row of a pending invitation with this id.
func (b *batch) invitation(ws, user, inv uuid.UUID) *member {
	m := b.present(ws, user)
	if m == nil || m.status != string(domain.StatusInvited) || !m.invID.Valid || m.invID.Bytes != inv {
		return nil
	}
	return m
}

// loadMembers reads the stored rows of the keys. LATERAL ... LIMIT 1 makes
// each key one probe of the primary key, never a join plan that scans the
// table.
func loadMembers(ctx context.Context, tx pgx.Tx, wss, users []pgtype.UUID, into map[key]*member) error {
	rows, err := tx.Query(ctx, `SELECT u.workspace_id, u.user_id, u.email, u.name, u.role, u.status,
			u.invitation_id, u.invited_at, u.invited_by, u.expires_at,
			u.expired, u.attempt, u.email_status, u.role_until
		FROM unnest($1::uuid[], $2::uuid[]) AS k(workspace_id, user_id)
		CROSS JOIN LATERAL (
			SELECT * FROM userlist_users u
			WHERE u.workspace_id = k.workspace_id AND u.user_id = k.user_id
			LIMIT 1
		) u`, wss, users)
	if err != nil {
		return fmt.Errorf("userlist: read rows: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ws, user pgtype.UUID
		var m member
		if err := rows.Scan(&ws, &user, &m.email, &m.name, &m.role, &m.status,
			&m.invID, &m.invitedAt, &m.invitedBy, &m.expiresAt,
			&m.expired, &m.attempt, &m.emailStatus, &m.roleUntil); err != nil {
			return fmt.Errorf("userlist: read rows: %w", err)
		}
		m.present = true
		*into[key{ws.Bytes, user.Bytes}] = m
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("userlist: read rows: %w", err)
	}
	return nil
}

const upsertMembers = `INSERT INTO userlist_users (workspace_id, user_id, email, name, role, status,
		invitation_id, invited_at, invited_by, expires_at, expired, attempt, email_status, role_until)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
		$7::uuid[], $8::timestamptz[], $9::uuid[], $10::timestamptz[],
		$11::boolean[], $12::integer[], $13::text[], $14::timestamptz[])
	ON CONFLICT (workspace_id, user_id) DO UPDATE SET
		email = excluded.email, name = excluded.name, role = excluded.role, status = excluded.status,
		invitation_id = excluded.invitation_id, invited_at = excluded.invited_at,
		invited_by = excluded.invited_by, expires_at = excluded.expires_at,
		expired = excluded.expired, attempt = excluded.attempt, email_status = excluded.email_status,
		role_until = excluded.role_until`

// setLogins replaces the stored login (after a reset; NULL: none yet);
// raiseLogins keeps the later of the stored and the new one (greatest
// ignores a NULL).
const (
	setLogins = `INSERT INTO userlist_logins (workspace_id, user_id, last_login_at)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
	ON CONFLICT (workspace_id, user_id) DO UPDATE SET last_login_at = excluded.last_login_at`
	raiseLogins = `INSERT INTO userlist_logins AS l (workspace_id, user_id, last_login_at)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])
	ON CONFLICT (workspace_id, user_id) DO UPDATE
	SET last_login_at = greatest(l.last_login_at, excluded.last_login_at)`
)

const upsertWorkspaces = `INSERT INTO userlist_workspaces (workspace_id, name, created_at, pos_commit, pos_prepare)
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
	ON CONFLICT (workspace_id) DO UPDATE SET
		name = excluded.name, created_at = excluded.created_at,
		pos_commit = excluded.pos_commit, pos_prepare = excluded.pos_prepare`

// rowSet holds userlist_users rows to write, one array per column.
type rowSet struct {
	ws, user             []pgtype.UUID
	inv, by              []pgtype.UUID
	email, role, status  []string
	name, emailStatus    []pgtype.Text
	invitedAt, expiresAt []pgtype.Timestamptz
	roleUntil            []pgtype.Timestamptz
	expired              []bool
	attempt              []int32
}

func (r *rowSet) add(k key, m *member) {
	r.ws, r.user = append(r.ws, projections.PGID(k.ws)), append(r.user, projections.PGID(k.user))
	r.email, r.name, r.role, r.status = append(r.email, m.email), append(r.name, m.name), append(r.role, m.role), append(r.status, m.status)
	r.inv, r.invitedAt, r.by = append(r.inv, m.invID), append(r.invitedAt, m.invitedAt), append(r.by, m.invitedBy)
	r.expiresAt, r.expired = append(r.expiresAt, m.expiresAt), append(r.expired, m.expired)
	r.attempt, r.emailStatus = append(r.attempt, m.attempt), append(r.emailStatus, m.emailStatus)
	r.roleUntil = append(r.roleUntil, m.roleUntil)
}

// keySet holds keys, and a time per key for logins.
type keySet struct {
	ws, user []pgtype.UUID
	at       []pgtype.Timestamptz
}

func (s *keySet) add(k key, at pgtype.Timestamptz) {
	s.ws, s.user, s.at = append(s.ws, projections.PGID(k.ws)), append(s.user, projections.PGID(k.user)), append(s.at, at)
}

// write sends the batch's writes in one round trip: one statement per kind
// of change (INSERT ... ON CONFLICT for rows to write, whether or not they
// were read; DELETE for rows that went).
func (b *batch) write(ctx context.Context, tx pgx.Tx, pos *projections.Positions) error {
	var (
		upserts                   rowSet
		deletes, lost, set, raise keySet
	)
	for k, m := range b.members {
		switch {
		case !m.dirty:
		case !m.present:
			deletes.add(k, pgtype.Timestamptz{})
		default:
			upserts.add(k, m)
		}
	}
	for k, l := range b.logins {
		switch {
		case l.gone:
			lost.add(k, l.at)
		case l.reset:
			set.add(k, l.at)
		case l.at.Valid:
			raise.add(k, l.at)
		}
	}
	wID, wCommit, wPrepare, err := pos.Moved()
	if err != nil {
		return fmt.Errorf("userlist: %w", err)
	}
	wName, wCreated := make([]pgtype.Text, len(wID)), make([]pgtype.Timestamptz, len(wID))
	for i, id := range wID {
		w := b.workspace(id.Bytes)
		wName[i], wCreated[i] = w.name, w.createdAt
	}

	q := &pgx.Batch{}
	if r := &upserts; len(r.ws) > 0 {
		q.Queue(upsertMembers, r.ws, r.user, r.email, r.name, r.role, r.status,
			r.inv, r.invitedAt, r.by, r.expiresAt, r.expired, r.attempt, r.emailStatus, r.roleUntil)
	}
	if len(deletes.ws) > 0 {
		q.Queue(projections.DeleteByKeys("userlist_users", "workspace_id", "user_id"), deletes.ws, deletes.user)
	}
	if len(lost.ws) > 0 {
		q.Queue(projections.DeleteByKeys("userlist_logins", "workspace_id", "user_id"), lost.ws, lost.user)
	}
	if len(set.ws) > 0 {
		q.Queue(setLogins, set.ws, set.user, set.at)
	}
	if len(raise.ws) > 0 {
		q.Queue(raiseLogins, raise.ws, raise.user, raise.at)
	}
	if len(wID) > 0 {
		q.Queue(upsertWorkspaces, wID, wName, wCreated, wCommit, wPrepare)
	}
	if len(b.deleted) > 0 {
		// Last, after the upserts of the batch's earlier events. No index
		// leads with user_id: a deletion scans the tables, which is rare
		// enough not to make every write keep one more index.
		q.Queue(`DELETE FROM userlist_users WHERE user_id = ANY($1)`, b.deleted)
		q.Queue(`DELETE FROM userlist_logins WHERE user_id = ANY($1)`, b.deleted)
	}
	if q.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("userlist: write: %w", err)
	}
	return nil
}
