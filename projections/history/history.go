// Package history is the temporal read model of the user list: every row
// the list has shown, with the interval of positions (and times) in which it
// showed it. It answers the list "as of" any past position or instant, with
// the same rows, filters and paging as the current list, by an index range
// rather than a replay, and each member's history of role and status. It
// also keeps the access reviews, whose populations are the list as of their
// start (reviews.go, review_queries.go).
//
// The tables are defined in tables.sql (membership_intervals,
// history_workspaces, access_reviews, access_review_items) and indexes.sql,
// beside this file.
package history

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
	"github.com/usersd/usersd/projections/userlist"
)

// Projection builds the membership intervals.
type Projection struct{ projections.Declaration }

// New returns the history projection.
func New() *Projection {
	return &Projection{projections.Declare("history", []string{"membership_intervals", "history_workspaces", "access_reviews", "access_review_items"},
		projections.SchemaFiles(sqlFiles), handling)}
}

// sqlFiles are the tables' DDL (tables.sql, indexes.sql).
//
//go:embed *.sql
var sqlFiles embed.FS

// handling: what the user list applies, since an interval is a user-list
// row: every workspace event but the settings and the audit's own records,
// and AccountDeleted, which blanks the person's address and name; and the
// access reviews (reviews.go).
var handling = projections.ApplyAllBut(domain.WorkspaceSettingsChanged{}, domain.AuditDivergenceAccepted{}, domain.AccountRegistered{})

type key struct{ ws, user uuid.UUID }

// snapshot is what the user list shows of one person in one workspace.
type snapshot struct {
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
	lastLogin   pgtype.Timestamptz
	roleUntil   pgtype.Timestamptz
	// grantedBy and grantedAt: who set the role the row shows, and when
	// (the event that did: the workspace's creation, the invitation, a
	// role change or a temporary role's end; NULL by for the system).
	grantedBy pgtype.UUID
	grantedAt pgtype.Timestamptz
}

// interval is one membership_intervals row.
type interval struct {
	snapshot
	from, to     domain.Position
	fromAt, toAt time.Time
	changedBy    pgtype.UUID
	action       string
	eventID      uuid.UUID
	// stored: the row was read open from the table, so only its end is
	// written.
	stored bool
}

// row is a person's state in the batch: their open interval, if any, and
// the intervals the batch closed or opened.
type row struct {
	open    *interval
	written []*interval
}

// Apply folds the batch into intervals and writes them in one round trip
// after reading the open intervals it continues; the workspaces' positions
// make it idempotent (projections.Positions). An account's deletion is
// idempotent alone: it closes what is open and blanks what is kept.
func (p *Projection) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	pos, err := projections.LoadPositions(ctx, tx, events, handling, "history_workspaces", "", nil, func(uuid.UUID) {})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	rows := make(map[key]*row)
	var order []key
	var loadWS, loadUser []pgtype.UUID
	live := pos.Live()
	for _, ev := range live {
		k, replaces, ok := subjectOf(ev.Event)
		if !ok {
			continue
		}
		if _, known := rows[k]; known {
			continue
		}
		rows[k] = &row{}
		order = append(order, k)
		if !replaces {
			loadWS, loadUser = append(loadWS, projections.PGID(k.ws)), append(loadUser, projections.PGID(k.user))
		}
	}
	if len(loadWS) > 0 {
		if err := loadOpen(ctx, tx, loadWS, loadUser, rows); err != nil {
			return err
		}
	}
	var reviews []*domain.RecordedEvent
	for _, ev := range live {
		if !applyEvent(rows, ev.RecordedEvent) {
			return fmt.Errorf("history: %s is declared applied but has no case", domain.EventName(ev.Event))
		}
		if isReview(ev.Event) {
			reviews = append(reviews, ev.RecordedEvent)
		}
	}
	var deleted []*domain.RecordedEvent
	for _, ev := range pos.Accounts() {
		if _, ok := ev.Event.(domain.AccountDeleted); !ok {
			return fmt.Errorf("history: %s is declared applied but has no case", domain.EventName(ev.Event))
		}
		deleted = append(deleted, ev)
	}
	return write(ctx, tx, pos, rows, order, reviews, deleted)
}

// subjectOf answers the row an event may change, and whether the event
// replaces the whole row (so the open interval need not be read: it is
// closed by the event whatever it holds, or there is none).
func subjectOf(e domain.Event) (k key, replaces, ok bool) {
	ws, user, ok := projections.PersonOf(e)
	// An invitation is read all the same: it may replace a pending one,
	// whose interval it closes.
	_, replaces = e.(domain.WorkspaceCreated)
	return key{ws, user}, replaces, ok
}

// applyEvent folds one event into the rows; false for a type it has no
// case for. The rules are the user list's (projections/userlist), event
// for event: TestAsOfMatchesReplay holds the two to each other.
func applyEvent(rows map[key]*row, ev *domain.RecordedEvent) bool {
	at := func(ws, user uuid.UUID) *row {
		r := rows[key{ws, user}]
		if r == nil {
			r = &row{}
			rows[key{ws, user}] = r
		}
		return r
	}
	// change ends the open interval at this event and opens next (none
	// for a row that goes).
	change := func(r *row, next *snapshot) {
		if r.open != nil {
			r.open.to, r.open.toAt = ev.Position, ev.Metadata.OccurredAt
			if r.open.stored {
				// Opened by an earlier batch: only its end is written.
				r.written = append(r.written, r.open)
			}
			r.open = nil
		}
		if next == nil {
			return
		}
		iv := &interval{snapshot: *next, from: ev.Position, fromAt: ev.Metadata.OccurredAt,
			changedBy: pgtype.UUID{Bytes: ev.Metadata.Actor.UserID, Valid: ev.Metadata.Actor.UserID != uuid.Nil},
			action:    domain.EventName(ev.Event), eventID: ev.Metadata.EventID}
		r.open = iv
		r.written = append(r.written, iv)
	}
	// invitation answers a copy of the open pending invitation with this
	// id, or nil.
	invitation := func(r *row, inv uuid.UUID) *snapshot {
		if r.open == nil || r.open.status != string(domain.StatusInvited) || !r.open.invID.Valid || r.open.invID.Bytes != inv {
			return nil
		}
		s := r.open.snapshot
		return &s
	}
	// granted marks s's role as set by this event.
	granted := func(s *snapshot) *snapshot {
		s.grantedBy = pgtype.UUID{Bytes: ev.Metadata.Actor.UserID, Valid: ev.Metadata.Actor.UserID != uuid.Nil}
		s.grantedAt = pgtype.Timestamptz{Time: ev.Metadata.OccurredAt, Valid: true}
		return s
	}
	member := func(r *row) *snapshot {
		if r.open == nil || r.open.status == string(domain.StatusInvited) {
			return nil
		}
		s := r.open.snapshot
		return &s
	}
	switch e := ev.Event.(type) {
	case domain.WorkspaceCreated:
		change(at(e.WorkspaceID, e.OwnerUserID), granted(&snapshot{
			email: e.OwnerEmail, name: pgtype.Text{String: e.OwnerName, Valid: e.OwnerName != ""},
			role: string(domain.RoleAdmin), status: string(domain.StatusActive),
		}))
	case domain.UserInvited:
		change(at(e.WorkspaceID, e.UserID), granted(&snapshot{
			email: e.Email, role: e.Role, status: string(domain.StatusInvited),
			invID:       pgtype.UUID{Bytes: e.InvitationID, Valid: true},
			invitedAt:   projections.Timestamp(e.InvitedAt, ev.Metadata.OccurredAt),
			invitedBy:   pgtype.UUID{Bytes: e.InvitedBy, Valid: e.InvitedBy != uuid.Nil},
			expiresAt:   pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true},
			attempt:     1,
			emailStatus: pgtype.Text{String: userlist.EmailPending, Valid: true},
		}))
	case domain.InvitationResent:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil {
			s.attempt = projections.Int32(e.Attempt)
			s.expiresAt = pgtype.Timestamptz{Time: e.ExpiresAt, Valid: true}
			s.expired = false
			s.emailStatus = pgtype.Text{String: userlist.EmailPending, Valid: true}
			change(r, s)
		}
	case domain.InvitationRevoked:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil {
			change(r, nil)
		}
	case domain.InvitationExpired:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil {
			s.expired = true
			change(r, s)
		}
	case domain.InvitationAccepted:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil {
			// A temporary role given to the invitation goes on after it.
			change(r, &snapshot{
				email: e.Email, name: pgtype.Text{String: e.Name, Valid: e.Name != ""},
				role: e.Role, status: string(domain.StatusActive), lastLogin: s.lastLogin,
				roleUntil: s.roleUntil, grantedBy: s.grantedBy, grantedAt: s.grantedAt,
			})
		}
	case domain.InvitationEmailSent:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil && s.attempt == projections.Int32(e.Attempt) {
			s.emailStatus = pgtype.Text{String: userlist.EmailSent, Valid: true}
			change(r, s)
		}
	case domain.InvitationEmailFailed:
		r := at(e.WorkspaceID, e.UserID)
		if s := invitation(r, e.InvitationID); s != nil && s.attempt == projections.Int32(e.Attempt) {
			s.emailStatus = pgtype.Text{String: userlist.EmailFailed, Valid: true}
			change(r, s)
		}
	case domain.RoleChanged:
		// Any change sets the end or cancels it (a grant with the same role
		// again is refused by the domain, but the list would show its end).
		r := at(e.WorkspaceID, e.UserID)
		if r.open != nil {
			s := r.open.snapshot
			s.role, s.roleUntil = e.ToRole, pgtype.Timestamptz{}
			if e.Until != nil {
				s.roleUntil = pgtype.Timestamptz{Time: *e.Until, Valid: true}
			}
			if s.role != r.open.role {
				change(r, granted(&s))
			} else if !sameTime(s.roleUntil, r.open.roleUntil) {
				change(r, &s)
			}
		}
	case domain.RoleGrantExpired:
		r := at(e.WorkspaceID, e.UserID)
		if r.open != nil {
			s := r.open.snapshot
			s.role, s.roleUntil = e.ToRole, pgtype.Timestamptz{}
			if s.role != r.open.role {
				change(r, granted(&s))
			} else if !sameTime(s.roleUntil, r.open.roleUntil) {
				change(r, &s)
			}
		}
	case domain.RoleGrantExpiryRefused:
		// The member keeps the role, for good now.
		r := at(e.WorkspaceID, e.UserID)
		if r.open != nil && r.open.roleUntil.Valid {
			s := r.open.snapshot
			s.roleUntil = pgtype.Timestamptz{}
			change(r, &s)
		}
	case domain.MemberRemoved:
		if r := at(e.WorkspaceID, e.UserID); r.open != nil {
			change(r, nil)
		}
	case domain.MemberSuspended:
		r := at(e.WorkspaceID, e.UserID)
		if s := member(r); s != nil && s.status != string(domain.StatusSuspended) {
			s.status = string(domain.StatusSuspended)
			change(r, s)
		}
	case domain.MemberReactivated:
		r := at(e.WorkspaceID, e.UserID)
		if s := member(r); s != nil && s.status != string(domain.StatusActive) {
			s.status = string(domain.StatusActive)
			change(r, s)
		}
	case domain.UserLoggedIn:
		// The list keeps the latest login; an earlier one changes nothing.
		r := at(e.WorkspaceID, e.UserID)
		if r.open != nil && (!r.open.lastLogin.Valid || e.LoggedInAt.After(r.open.lastLogin.Time)) {
			s := r.open.snapshot
			s.lastLogin = pgtype.Timestamptz{Time: e.LoggedInAt, Valid: true}
			change(r, &s)
		}
	case domain.AccessReviewStarted, domain.AccessReviewItemDecided, domain.AccessReviewCompleted:
		// A review changes no interval: its writes follow the batch's
		// intervals (queueReviews).
	default:
		return false
	}
	return true
}

// sameTime: both absent, or the same instant (whatever their locations).
func sameTime(a, b pgtype.Timestamptz) bool {
	return a.Valid == b.Valid && (!a.Valid || a.Time.Equal(b.Time))
}

// loadOpen reads the open interval of each key (LATERAL ... LIMIT 1: one
// probe of the primary key's prefix per key).
func loadOpen(ctx context.Context, tx pgx.Tx, wss, users []pgtype.UUID, into map[key]*row) error {
	rows, err := tx.Query(ctx, `SELECT i.workspace_id, i.user_id, i.valid_from_commit, i.valid_from_prepare, i.valid_from_at,
			i.email, i.name, i.role, i.status, i.invitation_id, i.invited_at, i.invited_by, i.expires_at,
			i.expired, i.attempt, i.email_status, i.last_login_at, i.role_until, i.granted_by, i.granted_at
		FROM unnest($1::uuid[], $2::uuid[]) AS k(workspace_id, user_id)
		CROSS JOIN LATERAL (
			SELECT * FROM membership_intervals i
			WHERE i.workspace_id = k.workspace_id AND i.user_id = k.user_id AND i.valid_to_commit IS NULL
			LIMIT 1
		) i`, wss, users)
	if err != nil {
		return fmt.Errorf("history: read open intervals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ws, user pgtype.UUID
		var fc, fp int64
		iv := &interval{stored: true}
		s := &iv.snapshot
		if err := rows.Scan(&ws, &user, &fc, &fp, &iv.fromAt, &s.email, &s.name, &s.role, &s.status,
			&s.invID, &s.invitedAt, &s.invitedBy, &s.expiresAt, &s.expired, &s.attempt, &s.emailStatus, &s.lastLogin, &s.roleUntil,
			&s.grantedBy, &s.grantedAt); err != nil {
			return fmt.Errorf("history: read open intervals: %w", err)
		}
		iv.from = domain.Position{Commit: uint64(fc), Prepare: uint64(fp)}
		into[key{ws.Bytes, user.Bytes}].open = iv
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history: read open intervals: %w", err)
	}
	return nil
}

const (
	insertIntervals = `INSERT INTO membership_intervals (workspace_id, user_id,
		valid_from_commit, valid_from_prepare, valid_from_at, valid_to_commit, valid_to_prepare, valid_to_at,
		email, name, role, status, invitation_id, invited_at, invited_by, expires_at, expired, attempt, email_status,
		last_login_at, changed_by, action, event_id, role_until, granted_by, granted_at)
	SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[],
		$6::bigint[], $7::bigint[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[],
		$13::uuid[], $14::timestamptz[], $15::uuid[], $16::timestamptz[], $17::boolean[], $18::integer[], $19::text[],
		$20::timestamptz[], $21::uuid[], $22::text[], $23::uuid[], $24::timestamptz[], $25::uuid[], $26::timestamptz[])`
	closeIntervals = `UPDATE membership_intervals i
		SET valid_to_commit = k.c, valid_to_prepare = k.p, valid_to_at = k.at
		FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::timestamptz[])
			AS k(workspace_id, user_id, fc, fp, c, p, at)
		WHERE i.workspace_id = k.workspace_id AND i.user_id = k.user_id
			AND i.valid_from_commit = k.fc AND i.valid_from_prepare = k.fp`
	upsertWorkspaces = `INSERT INTO history_workspaces (workspace_id, pos_commit, pos_prepare)
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[])
		ON CONFLICT (workspace_id) DO UPDATE SET pos_commit = excluded.pos_commit, pos_prepare = excluded.pos_prepare`
	// An account's deletion ends what is still open (the list drops the
	// person's rows) and blanks the person's address and name in every
	// interval. No index leads with user_id: a deletion scans, as the user
	// list's does, rather than make every write keep one more index.
	closeDeleted = `UPDATE membership_intervals
		SET valid_to_commit = $2, valid_to_prepare = $3, valid_to_at = $4
		WHERE user_id = $1 AND valid_to_commit IS NULL`
	blankDeleted = `UPDATE membership_intervals SET email = '', name = NULL
		WHERE user_id = $1 AND (email <> '' OR name IS NOT NULL)`
)

type intervalSet struct {
	ws, user, inv, by, changedBy []pgtype.UUID
	fc, fp                       []int64
	fromAt                       []time.Time
	tc, tp                       []pgtype.Int8
	toAt                         []pgtype.Timestamptz
	email, role, status, action  []string
	name, emailStatus            []pgtype.Text
	invitedAt, expiresAt, login  []pgtype.Timestamptz
	roleUntil, grantedAt         []pgtype.Timestamptz
	grantedBy                    []pgtype.UUID
	expired                      []bool
	attempt                      []int32
	eventID                      []pgtype.UUID
}

func posColumns(p domain.Position) (int64, int64, error) { return projections.PositionColumns(p) }

func (s *intervalSet) add(k key, iv *interval) error {
	fc, fp, err := posColumns(iv.from)
	if err != nil {
		return err
	}
	s.ws, s.user = append(s.ws, projections.PGID(k.ws)), append(s.user, projections.PGID(k.user))
	s.fc, s.fp, s.fromAt = append(s.fc, fc), append(s.fp, fp), append(s.fromAt, iv.fromAt)
	var tc, tp pgtype.Int8
	var toAt pgtype.Timestamptz
	if !iv.to.IsZero() {
		c, p, err := posColumns(iv.to)
		if err != nil {
			return err
		}
		tc, tp, toAt = pgtype.Int8{Int64: c, Valid: true}, pgtype.Int8{Int64: p, Valid: true}, pgtype.Timestamptz{Time: iv.toAt, Valid: true}
	}
	s.tc, s.tp, s.toAt = append(s.tc, tc), append(s.tp, tp), append(s.toAt, toAt)
	s.email, s.name, s.role, s.status = append(s.email, iv.email), append(s.name, iv.name), append(s.role, iv.role), append(s.status, iv.status)
	s.inv, s.invitedAt, s.by, s.expiresAt = append(s.inv, iv.invID), append(s.invitedAt, iv.invitedAt), append(s.by, iv.invitedBy), append(s.expiresAt, iv.expiresAt)
	s.expired, s.attempt, s.emailStatus, s.login = append(s.expired, iv.expired), append(s.attempt, iv.attempt), append(s.emailStatus, iv.emailStatus), append(s.login, iv.lastLogin)
	s.changedBy, s.action, s.eventID = append(s.changedBy, iv.changedBy), append(s.action, iv.action), append(s.eventID, projections.PGID(iv.eventID))
	s.roleUntil = append(s.roleUntil, iv.roleUntil)
	s.grantedBy, s.grantedAt = append(s.grantedBy, iv.grantedBy), append(s.grantedAt, iv.grantedAt)
	return nil
}

// write sends the batch's writes in one round trip: the ends of stored
// intervals, the new intervals, the workspaces' positions, the access
// reviews' writes, then the deletions of accounts (after the batch's other
// writes).
func write(ctx context.Context, tx pgx.Tx, pos *projections.Positions, rows map[key]*row, order []key, reviews, deleted []*domain.RecordedEvent) error {
	var ins intervalSet
	var cWS, cUser []pgtype.UUID
	var cFC, cFP, cC, cP []int64
	var cAt []time.Time
	for _, k := range order {
		for _, iv := range rows[k].written {
			if !iv.stored {
				if err := ins.add(k, iv); err != nil {
					return fmt.Errorf("history: %w", err)
				}
				continue
			}
			fc, fp, err := posColumns(iv.from)
			if err != nil {
				return fmt.Errorf("history: %w", err)
			}
			c, p, err := posColumns(iv.to)
			if err != nil {
				return fmt.Errorf("history: %w", err)
			}
			cWS, cUser = append(cWS, projections.PGID(k.ws)), append(cUser, projections.PGID(k.user))
			cFC, cFP, cC, cP, cAt = append(cFC, fc), append(cFP, fp), append(cC, c), append(cP, p), append(cAt, iv.toAt)
		}
	}
	wID, wCommit, wPrepare, err := pos.Moved()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	b := &pgx.Batch{}
	if len(cWS) > 0 {
		b.Queue(closeIntervals, cWS, cUser, cFC, cFP, cC, cP, cAt)
	}
	if s := &ins; len(s.ws) > 0 {
		b.Queue(insertIntervals, s.ws, s.user, s.fc, s.fp, s.fromAt, s.tc, s.tp, s.toAt,
			s.email, s.name, s.role, s.status, s.inv, s.invitedAt, s.by, s.expiresAt, s.expired, s.attempt, s.emailStatus,
			s.login, s.changedBy, s.action, s.eventID, s.roleUntil, s.grantedBy, s.grantedAt)
	}
	if len(wID) > 0 {
		b.Queue(upsertWorkspaces, wID, wCommit, wPrepare)
	}
	if err := queueReviews(b, reviews); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	for _, ev := range deleted {
		e := ev.Event.(domain.AccountDeleted)
		c, p, err := posColumns(ev.Position)
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		at := ev.Metadata.OccurredAt
		if at.IsZero() {
			at = e.DeletedAt
		}
		b.Queue(closeDeleted, projections.PGID(e.UserID), c, p, at)
		b.Queue(blankDeleted, projections.PGID(e.UserID))
		b.Queue(blankDeletedItems, projections.PGID(e.UserID))
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("history: write: %w", err)
	}
	return nil
}
