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
	"time"

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

// Member is what the list shows of one person in one workspace, as Next
// folds events into it: a userlist_users row and its last login. The
// history (projections/history) keeps it through time.
type Member struct {
	Email        string
	Name         pgtype.Text
	Role         string
	Status       string
	InvitationID pgtype.UUID
	InvitedAt    pgtype.Timestamptz
	InvitedBy    pgtype.UUID
	ExpiresAt    pgtype.Timestamptz
	Expired      bool
	Attempt      int32
	EmailStatus  pgtype.Text
	LastLogin    pgtype.Timestamptz
	RoleUntil    pgtype.Timestamptz
}

// memberRow is a userlist_users row as Apply folds events into it (its
// LastLogin unused: the batch keeps logins apart, in logins).
type memberRow struct {
	Member

	// present: the row exists after the events folded so far. dirty: it
	// must be written (upserted if present, deleted if not).
	present, dirty bool
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

// created sets what the workspace's creation says of it.
func (w *workspace) created(e domain.WorkspaceCreated, ev *domain.RecordedEvent) {
	w.name = pgtype.Text{String: e.Name, Valid: true}
	w.createdAt = projections.Timestamp(e.CreatedAt, ev.Metadata.OccurredAt)
}

// batch is the state Apply folds one batch of events into.
type batch struct {
	workspaces map[uuid.UUID]*workspace
	members    map[key]*memberRow
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

// handling: every workspace event but the settings and the webhooks, which
// the list does not show, the audit's own records and the access reviews
// (the history keeps those); not AccountRegistered, which shows nothing.
// AccountDeleted, of no workspace, drops the person's rows everywhere.
var handling = projections.ApplyAllBut(domain.WorkspaceSettingsChanged{}, domain.AuditDivergenceAccepted{}, domain.AccountRegistered{},
	domain.AccessReviewStarted{}, domain.AccessReviewItemDecided{}, domain.AccessReviewCompleted{},
	domain.WebhookSubscribed{}, domain.WebhookRemoved{}, domain.WebhookReplayRequested{})

// Apply folds the batch into the rows it touches, in memory, and writes each
// table once: three round trips per batch (read positions, read rows,
// write) whatever its size. Logins need no read. The workspaces' positions
// make it idempotent (projections.Positions).
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	b := &batch{workspaces: make(map[uuid.UUID]*workspace), members: make(map[key]*memberRow), logins: make(map[key]*login)}
	var stored workspace
	pos, err := projections.LoadPositions(ctx, tx, events, handling, "userlist_workspaces", "name, created_at",
		[]any{&stored.name, &stored.createdAt}, func(ws uuid.UUID) { *b.workspace(ws) = stored })
	if err != nil {
		return fmt.Errorf("userlist: %w", err)
	}
	for _, ev := range pos.Accounts() {
		if !b.apply(ev, nil) {
			return projections.ErrNoCase("userlist", ev.Event)
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
		b.members[k] = &memberRow{}
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
			return projections.ErrNoCase("userlist", ev.Event)
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
// no case for: the workspace's row and the logins here, each person's row
// by the list's rules (Next).
func (b *batch) apply(ev *domain.RecordedEvent, w *workspace) bool {
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		w.created(e, ev)
	case domain.AccountDeleted:
		// The removals before it dropped the person's rows already; this
		// drops what a removal missed (a row the read model got from an
		// event the command did not see), keyed by person alone.
		b.deleted = append(b.deleted, projections.PGID(e.UserID))
		return true
	case domain.UserLoggedIn:
		// The stored row is not read for a login: a login is recorded only
		// for a member (the aggregate refuses others), and a login row
		// without a member row is never shown.
		if l := b.login(key{e.WorkspaceID, e.UserID}); later(e.LoggedInAt, l.at) {
			l.at = pgtype.Timestamptz{Time: e.LoggedInAt, Valid: true}
		}
		return true
	}
	ws, user, ok := projections.PersonOf(ev.Event)
	if !ok {
		return false
	}
	k := key{ws, user}
	m := b.members[k]
	change, ok := Next(&m.Member, m.present, ev)
	switch change {
	case Changed:
		m.dirty = true
	case Started:
		m.present, m.dirty = true, true
		*b.login(k) = login{reset: true}
	case Ended:
		m.present, m.dirty = false, true
		*b.login(k) = login{gone: true}
	}
	return ok
}

// Change is what an event does to a person's row (Next).
type Change uint8

const (
	// Unchanged: the row is as it was (or there is still none).
	Unchanged Change = iota
	// Changed: the row goes on, changed.
	Changed
	// Started: a new row replaces the one there was, if any: nothing of it
	// is kept, its last login neither.
	Started
	// Ended: the row goes.
	Ended
)

// Next folds one event into the row of the person it is about
// (projections.PersonOf), which exists before it if present: the list's
// rules, one place for the list (Apply) and for its history through time
// (projections/history). It changes *m only when it answers Changed or
// Started, and answers false for a type it has no case for. Events about a
// row that does not exist change nothing; so do delivery outcomes of an
// older attempt or of another invitation, and events that would set what
// the row shows already.
func Next(m *Member, present bool, ev *domain.RecordedEvent) (Change, bool) {
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		*m = Member{
			Email: e.OwnerEmail, Name: pgtype.Text{String: e.OwnerName, Valid: e.OwnerName != ""},
			Role: string(domain.RoleAdmin), Status: string(domain.StatusActive),
		}
		return Started, true
	case domain.UserInvited:
		// A new invitation replaces the row, and the person's last login
		// with it: after a removal there is none, and an expired invitation
		// is invited anew.
		*m = Member{
			Email: e.Email, Role: e.Role, Status: string(domain.StatusInvited),
			InvitationID: pgtype.UUID{Bytes: e.InvitationID, Valid: true},
			InvitedAt:    projections.Timestamp(e.InvitedAt, ev.Metadata.OccurredAt),
			InvitedBy:    pgtype.UUID{Bytes: e.InvitedBy, Valid: e.InvitedBy != uuid.Nil},
			ExpiresAt:    pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true},
			Attempt:      1,
			EmailStatus:  pgtype.Text{String: EmailPending, Valid: true},
		}
		return Started, true
	case domain.InvitationResent:
		if !m.pending(present, e.InvitationID) {
			break
		}
		m.Attempt = projections.Int32(e.Attempt)
		m.ExpiresAt = pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true}
		m.Expired = false
		m.EmailStatus = pgtype.Text{String: EmailPending, Valid: true}
		return Changed, true
	case domain.InvitationRevoked:
		if m.pending(present, e.InvitationID) {
			return Ended, true
		}
	case domain.InvitationExpired:
		if !m.pending(present, e.InvitationID) {
			break
		}
		m.Expired = true
		return Changed, true
	case domain.InvitationAccepted:
		if !m.pending(present, e.InvitationID) {
			break
		}
		// A temporary role given to the invitation goes on after it.
		*m = Member{
			Email: e.Email, Name: pgtype.Text{String: e.Name, Valid: e.Name != ""},
			Role: e.Role, Status: string(domain.StatusActive), LastLogin: m.LastLogin, RoleUntil: m.RoleUntil,
		}
		return Changed, true
	case domain.InvitationEmailSent:
		return m.delivered(present, e.InvitationID, e.Attempt, EmailSent), true
	case domain.InvitationEmailFailed:
		return m.delivered(present, e.InvitationID, e.Attempt, EmailFailed), true
	case domain.RoleChanged:
		// Any change sets the end or cancels it (a grant with the same role
		// again is refused by the domain, but the list would show its end).
		var until pgtype.Timestamptz
		if e.Until != nil {
			until = pgtype.Timestamptz{Time: *e.Until, Valid: true}
		}
		return m.setRole(present, e.ToRole, until), true
	case domain.RoleGrantExpired:
		return m.setRole(present, e.ToRole, pgtype.Timestamptz{}), true
	case domain.RoleGrantExpiryRefused:
		// The member keeps the role, for good now.
		return m.setRole(present, m.Role, pgtype.Timestamptz{}), true
	case domain.MemberRemoved:
		if present {
			return Ended, true
		}
	case domain.MemberSuspended:
		return m.setStatus(present, domain.StatusSuspended), true
	case domain.MemberReactivated:
		return m.setStatus(present, domain.StatusActive), true
	case domain.UserLoggedIn:
		if !present || !later(e.LoggedInAt, m.LastLogin) {
			break
		}
		m.LastLogin = pgtype.Timestamptz{Time: e.LoggedInAt, Valid: true}
		return Changed, true
	default:
		return Unchanged, false
	}
	return Unchanged, true
}

// pending: the row is a pending invitation with this id.
func (m *Member) pending(present bool, inv uuid.UUID) bool {
	return present && m.Status == string(domain.StatusInvited) && m.InvitationID.Valid && m.InvitationID.Bytes == inv
}

// delivered sets the e-mail status of the invitation's current attempt.
func (m *Member) delivered(present bool, inv uuid.UUID, attempt int, status string) Change {
	if !m.pending(present, inv) || m.Attempt != projections.Int32(attempt) {
		return Unchanged
	}
	m.EmailStatus = pgtype.Text{String: status, Valid: true}
	return Changed
}

// setRole gives the row role until then (NULL: for good).
func (m *Member) setRole(present bool, role string, until pgtype.Timestamptz) Change {
	if !present || (role == m.Role && sameTime(until, m.RoleUntil)) {
		return Unchanged
	}
	m.Role, m.RoleUntil = role, until
	return Changed
}

// setStatus suspends or reactivates a member (not an invitation).
func (m *Member) setStatus(present bool, s domain.Status) Change {
	if !present || m.Status == string(domain.StatusInvited) || m.Status == string(s) {
		return Unchanged
	}
	m.Status = string(s)
	return Changed
}

// later: a login at this time is later than the last one (or the first):
// the list keeps the latest login, and an earlier one changes nothing.
func later(at time.Time, last pgtype.Timestamptz) bool {
	return !last.Valid || at.After(last.Time)
}

// sameTime: both absent, or the same instant (whatever their locations).
func sameTime(a, b pgtype.Timestamptz) bool {
	return a.Valid == b.Valid && (!a.Valid || a.Time.Equal(b.Time))
}

// loadMembers reads the stored rows of the keys. LATERAL ... LIMIT 1 makes
// each key one probe of the primary key, never a join plan that scans the
// table.
func loadMembers(ctx context.Context, tx pgx.Tx, wss, users []pgtype.UUID, into map[key]*memberRow) error {
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
		var m memberRow
		if err := rows.Scan(&ws, &user, &m.Email, &m.Name, &m.Role, &m.Status,
			&m.InvitationID, &m.InvitedAt, &m.InvitedBy, &m.ExpiresAt,
			&m.Expired, &m.Attempt, &m.EmailStatus, &m.RoleUntil); err != nil {
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

// The writes are MERGEs, not INSERT ... ON CONFLICT: an upsert inserts
// speculatively (a confirmation record per new row) and locks a row it
// updates (a lock record), each in the WAL; a MERGE inserts or updates
// plainly. The projection's lock makes its runner the tables' one writer,
// so no concurrent insert can race a MERGE (one that did would fail its
// batch, not write it twice). Each MERGE probes the primary key per key.
const upsertMembers = `MERGE INTO userlist_users u
	USING (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
		$7::uuid[], $8::timestamptz[], $9::uuid[], $10::timestamptz[],
		$11::boolean[], $12::integer[], $13::text[], $14::timestamptz[])
		AS k(workspace_id, user_id, email, name, role, status, invitation_id, invited_at, invited_by,
			expires_at, expired, attempt, email_status, role_until)) k
	ON u.workspace_id = k.workspace_id AND u.user_id = k.user_id
	WHEN MATCHED THEN UPDATE SET
		email = k.email, name = k.name, role = k.role, status = k.status,
		invitation_id = k.invitation_id, invited_at = k.invited_at,
		invited_by = k.invited_by, expires_at = k.expires_at,
		expired = k.expired, attempt = k.attempt, email_status = k.email_status,
		role_until = k.role_until
	WHEN NOT MATCHED THEN INSERT (workspace_id, user_id, email, name, role, status,
		invitation_id, invited_at, invited_by, expires_at, expired, attempt, email_status, role_until)
	VALUES (k.workspace_id, k.user_id, k.email, k.name, k.role, k.status,
		k.invitation_id, k.invited_at, k.invited_by, k.expires_at, k.expired, k.attempt, k.email_status, k.role_until)`

// setLogins replaces the stored login (after a reset; NULL: none yet);
// raiseLogins keeps the later of the stored and the new one, and leaves a
// row that has it already as it is.
const (
	setLogins = `MERGE INTO userlist_logins l
	USING (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS k(workspace_id, user_id, at)) k
	ON l.workspace_id = k.workspace_id AND l.user_id = k.user_id
	WHEN MATCHED THEN UPDATE SET last_login_at = k.at
	WHEN NOT MATCHED THEN INSERT (workspace_id, user_id, last_login_at) VALUES (k.workspace_id, k.user_id, k.at)`
	raiseLogins = `MERGE INTO userlist_logins l
	USING (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS k(workspace_id, user_id, at)) k
	ON l.workspace_id = k.workspace_id AND l.user_id = k.user_id
	WHEN MATCHED AND (l.last_login_at IS NULL OR l.last_login_at < k.at) THEN UPDATE SET last_login_at = k.at
	WHEN NOT MATCHED THEN INSERT (workspace_id, user_id, last_login_at) VALUES (k.workspace_id, k.user_id, k.at)`
)

const upsertWorkspaces = `MERGE INTO userlist_workspaces w
	USING (SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])
		AS k(workspace_id, name, created_at, pos_commit, pos_prepare)) k
	ON w.workspace_id = k.workspace_id
	WHEN MATCHED THEN UPDATE SET
		name = k.name, created_at = k.created_at, pos_commit = k.pos_commit, pos_prepare = k.pos_prepare
	WHEN NOT MATCHED THEN INSERT (workspace_id, name, created_at, pos_commit, pos_prepare)
	VALUES (k.workspace_id, k.name, k.created_at, k.pos_commit, k.pos_prepare)`

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

func (r *rowSet) add(k key, m *Member) {
	r.ws, r.user = append(r.ws, projections.PGID(k.ws)), append(r.user, projections.PGID(k.user))
	r.email, r.name, r.role, r.status = append(r.email, m.Email), append(r.name, m.Name), append(r.role, m.Role), append(r.status, m.Status)
	r.inv, r.invitedAt, r.by = append(r.inv, m.InvitationID), append(r.invitedAt, m.InvitedAt), append(r.by, m.InvitedBy)
	r.expiresAt, r.expired = append(r.expiresAt, m.ExpiresAt), append(r.expired, m.Expired)
	r.attempt, r.emailStatus = append(r.attempt, m.Attempt), append(r.emailStatus, m.EmailStatus)
	r.roleUntil = append(r.roleUntil, m.RoleUntil)
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
// of change (MERGE for rows to write, whether or not they were read; DELETE
// for rows that went).
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
			upserts.add(k, &m.Member)
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
