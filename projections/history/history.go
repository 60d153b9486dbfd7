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
// row: every workspace event but the settings, the webhooks and the audit's
// own records, and AccountDeleted, which blanks the person's address and
// name; and the access reviews (reviews.go).
var handling = projections.ApplyAllBut(domain.WorkspaceSettingsChanged{}, domain.AuditDivergenceAccepted{}, domain.AccountRegistered{},
	domain.WebhookSubscribed{}, domain.WebhookRemoved{}, domain.WebhookReplayRequested{})

type key struct{ ws, user uuid.UUID }

// interval is one membership_intervals row.
type interval struct {
	userlist.Member
	from, to     domain.Position
	fromAt, toAt time.Time
	changedBy    pgtype.UUID
	action       string
	eventID      uuid.UUID
	// grantedBy and grantedAt: who set the role the interval shows, and
	// when: the event that started the row (the workspace's creation, an
	// invitation) or changed its role (a role change, a temporary role's
	// end); NULL by for the system. Other changes carry them over.
	grantedBy pgtype.UUID
	grantedAt pgtype.Timestamptz
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
			return projections.ErrNoCase("history", ev.Event)
		}
		if isReview(ev.Event) {
			reviews = append(reviews, ev.RecordedEvent)
		}
	}
	var deleted []*domain.RecordedEvent
	for _, ev := range pos.Accounts() {
		if _, ok := ev.Event.(domain.AccountDeleted); !ok {
			return projections.ErrNoCase("history", ev.Event)
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

// applyEvent folds one event into the rows by the user list's rules
// (userlist.Next): an event that changes a row ends its open interval and
// opens the next (none for a row that goes). False for a type it has no
// case for.
func applyEvent(rows map[key]*row, ev *domain.RecordedEvent) bool {
	if isReview(ev.Event) {
		// A review changes no interval: its writes follow the batch's
		// intervals (queueReviews).
		return true
	}
	ws, user, ok := projections.PersonOf(ev.Event)
	if !ok {
		return false
	}
	k := key{ws, user}
	r := rows[k]
	if r == nil {
		r = &row{}
		rows[k] = r
	}
	var next userlist.Member
	if r.open != nil {
		next = r.open.Member
	}
	change, ok := userlist.Next(&next, r.open != nil, ev)
	if change == userlist.Unchanged {
		return ok
	}
	prev := r.open
	if r.open != nil {
		r.open.to, r.open.toAt = ev.Position, ev.Metadata.OccurredAt
		if r.open.stored {
			// Opened by an earlier batch: only its end is written.
			r.written = append(r.written, r.open)
		}
		r.open = nil
	}
	if change == userlist.Ended {
		return true
	}
	iv := opened(ev, next, prev, change)
	r.open = iv
	r.written = append(r.written, iv)
	return true
}

// opened is the interval ev opens with the row next, after prev (nil:
// none): who set its role and when carry over from prev unless ev started
// the row anew or changed its role.
func opened(ev *domain.RecordedEvent, next userlist.Member, prev *interval, change userlist.Change) *interval {
	actor := pgtype.UUID{Bytes: ev.Metadata.Actor.UserID, Valid: ev.Metadata.Actor.UserID != uuid.Nil}
	iv := &interval{Member: next, from: ev.Position, fromAt: ev.Metadata.OccurredAt,
		changedBy: actor, action: domain.EventName(ev.Event), eventID: ev.Metadata.EventID,
		grantedBy: actor, grantedAt: pgtype.Timestamptz{Time: ev.Metadata.OccurredAt, Valid: true}}
	if prev != nil && change != userlist.Started && prev.Role == next.Role {
		iv.grantedBy, iv.grantedAt = prev.grantedBy, prev.grantedAt
	}
	return iv
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
		m := &iv.Member
		if err := rows.Scan(&ws, &user, &fc, &fp, &iv.fromAt, &m.Email, &m.Name, &m.Role, &m.Status,
			&m.InvitationID, &m.InvitedAt, &m.InvitedBy, &m.ExpiresAt, &m.Expired, &m.Attempt, &m.EmailStatus, &m.LastLogin, &m.RoleUntil,
			&iv.grantedBy, &iv.grantedAt); err != nil {
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
	// A MERGE, not INSERT ... ON CONFLICT, which writes a lock record
	// for each row it updates (as the user list's writes).
	upsertWorkspaces = `MERGE INTO history_workspaces w
		USING (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS k(workspace_id, pos_commit, pos_prepare)) k
		ON w.workspace_id = k.workspace_id
		WHEN MATCHED THEN UPDATE SET pos_commit = k.pos_commit, pos_prepare = k.pos_prepare
		WHEN NOT MATCHED THEN INSERT (workspace_id, pos_commit, pos_prepare) VALUES (k.workspace_id, k.pos_commit, k.pos_prepare)`
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
	s.email, s.name, s.role, s.status = append(s.email, iv.Email), append(s.name, iv.Name), append(s.role, iv.Role), append(s.status, iv.Status)
	s.inv, s.invitedAt, s.by, s.expiresAt = append(s.inv, iv.InvitationID), append(s.invitedAt, iv.InvitedAt), append(s.by, iv.InvitedBy), append(s.expiresAt, iv.ExpiresAt)
	s.expired, s.attempt, s.emailStatus, s.login = append(s.expired, iv.Expired), append(s.attempt, iv.Attempt), append(s.emailStatus, iv.EmailStatus), append(s.login, iv.LastLogin)
	s.changedBy, s.action, s.eventID = append(s.changedBy, iv.changedBy), append(s.action, iv.action), append(s.eventID, projections.PGID(iv.eventID))
	s.roleUntil = append(s.roleUntil, iv.RoleUntil)
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
