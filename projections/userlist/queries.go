package userlist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// MaxQueryLength caps the text query, in characters.
	MaxQueryLength = 200
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB = projections.DB

// Queries reads the user list.
type Queries struct {
	db  DB
	now func() time.Time
}

// NewQueries returns the user list's queries on db. now is the clock that
// decides whether an invitation has expired (time.Now if nil).
func NewQueries(db DB, now func() time.Time) *Queries {
	if now == nil {
		now = time.Now
	}
	return &Queries{db: projections.NeedDB("userlist: NewQueries", db), now: now}
}

// Filter selects and pages the user list. The zero Filter is the first page
// of everyone, DefaultLimit rows.
type Filter struct {
	// Status is "", "active", "invited" or "suspended" (any letter case).
	Status string
	// Role is "" or a role name (any letter case).
	Role string
	// Q matches a case-insensitive substring of the name or the e-mail.
	Q string
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is a page's NextCursor, to read the page after it. A cursor
	// is valid only for the workspace, filter and sort that made it.
	Cursor string
	// InactiveSince is "" or an RFC 3339 instant: only members (active or
	// suspended, not invited) with no login since then, those who never
	// logged in included.
	InactiveSince string
	// Sort is SortDisplayName (also ""), SortLastLogin or SortLastLoginDesc.
	Sort string
}

// Sort orders of the list.
const (
	// SortDisplayName: by display name (lower case), then user id.
	SortDisplayName = "displayName"
	// SortLastLogin: oldest login first, those who never logged in before
	// everyone, then user id.
	SortLastLogin = "lastLoginAt"
	// SortLastLoginDesc: newest login first, those who never logged in
	// after everyone, then user id descending (the exact reverse).
	SortLastLoginDesc = "-lastLoginAt"
)

// Row is one person of the user list. The JSON form is the API's.
type Row struct {
	UserID uuid.UUID `json:"userId"`
	// Name is nil until the person completes their profile at acceptance.
	Name        *string       `json:"name"`
	DisplayName string        `json:"displayName"`
	Email       string        `json:"email"`
	Role        domain.Role   `json:"role"`
	Status      domain.Status `json:"status"`
	LastLoginAt *time.Time    `json:"lastLoginAt"`
	// RoleUntil is when a temporary role ends (the previous one comes
	// back), nil when it does not.
	RoleUntil *time.Time `json:"roleUntil"`
	// Invitation is set while Status is invited.
	Invitation *Invitation `json:"invitation,omitempty"`
}

// Invitation is a pending invitation as the list shows it.
type Invitation struct {
	ID        uuid.UUID `json:"id"`
	InvitedAt time.Time `json:"invitedAt"`
	InvitedBy uuid.UUID `json:"invitedBy"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Expired is true once the invitation was marked expired or its time
	// is up, whichever comes first.
	Expired bool `json:"expired"`
	// Attempt counts the e-mails sent for the invitation, from 1.
	Attempt int `json:"-"`
	// EmailStatus is the delivery of the current attempt's e-mail:
	// EmailPending, EmailSent or EmailFailed.
	EmailStatus string `json:"emailStatus"`
}

// Page is one page of the list. NextCursor is empty on the last page.
type Page struct {
	Items      []Row  `json:"items"`
	NextCursor string `json:"nextCursor"`
}

// filter is a validated Filter.
type filter struct {
	status, role, q string
	// sort is "" (display name), SortLastLogin or SortLastLoginDesc.
	sort string
	// since is InactiveSince, sinceKey its canonical spelling ("" if none).
	since    time.Time
	sinceKey string
	limit    int
	after    *cursor
}

func (f filter) byLogin() bool { return f.sort != "" }

func invalid(param, format string, args ...any) *domain.Error {
	return &domain.Error{Code: domain.CodeInvalidInput, Field: param, Message: fmt.Sprintf(format, args...)}
}

// validate checks f and answers its canonical form, or a *domain.Error with
// the code invalid_input whose Field names the parameter.
func validate(ws uuid.UUID, f Filter) (filter, error) {
	var out filter
	if s := strings.TrimSpace(f.Status); s != "" {
		for _, st := range []domain.Status{domain.StatusActive, domain.StatusInvited, domain.StatusSuspended} {
			if strings.EqualFold(s, string(st)) {
				out.status = string(st)
			}
		}
		if out.status == "" {
			return filter{}, invalid("status", "unknown status %q: want active, invited or suspended", shorten(s, 40))
		}
	}
	if r := strings.TrimSpace(f.Role); r != "" {
		role, err := domain.ParseRole(r)
		if err != nil {
			return filter{}, invalid("role", "unknown role %q: want Admin, Manager, Editor, Monitor or AgentUser", shorten(r, 40))
		}
		out.role = string(role)
	}
	out.q = strings.TrimSpace(f.Q)
	switch {
	case len([]rune(out.q)) > MaxQueryLength:
		return filter{}, invalid("q", "the text query is longer than %d characters", MaxQueryLength)
	case strings.ContainsFunc(out.q, isControl):
		return filter{}, invalid("q", "the text query contains control characters")
	}
	switch st := strings.TrimSpace(f.Sort); st {
	case "", SortDisplayName:
	case SortLastLogin, SortLastLoginDesc:
		out.sort = st
	default:
		return filter{}, invalid("sort", "unknown sort %q: want displayName, lastLoginAt or -lastLoginAt", shorten(st, 40))
	}
	if v := strings.TrimSpace(f.InactiveSince); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return filter{}, invalid("inactiveSince", "%q is not an RFC 3339 instant (e.g. 2026-01-31T00:00:00Z)", shorten(v, 40))
		}
		out.since = t.Truncate(time.Microsecond)
		out.sinceKey = loginKey(out.since)
	}
	switch {
	case f.Limit == 0:
		out.limit = DefaultLimit
	case f.Limit < 1 || f.Limit > MaxLimit:
		return filter{}, invalid("limit", "%d is out of range: want 1 to %d", f.Limit, MaxLimit)
	default:
		out.limit = f.Limit
	}
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor, ws, out)
		if err == nil && out.byLogin() {
			c.login, err = parseLoginKey(c.sortKey)
		}
		if err != nil {
			return filter{}, invalid("cursor", "not a cursor of this list (%v); start again from the first page", err)
		}
		out.after = &c
	}
	return out, nil
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// rowColumns are what scanRow reads, in its order.
const rowColumns = `u.user_id, u.name, u.email, u.role, u.status, l.last_login_at,
		u.invitation_id, u.invited_at, u.invited_by, u.expires_at, u.expired, u.attempt,
		u.email_status, u.sort_key, u.role_until`

// rowSelect reads rows of the list with their last login, joined by key
// (LATERAL ... LIMIT 1: one probe per row the query returns).
const rowSelect = `SELECT ` + rowColumns + `
	FROM userlist_users u
	LEFT JOIN LATERAL (
		SELECT last_login_at FROM userlist_logins l
		WHERE l.workspace_id = u.workspace_id AND l.user_id = u.user_id
		LIMIT 1
	) l ON true`

// loginSelect reads the same columns in last-login order: the logins'
// sort index yields the page's keys in order, and each row is one probe of
// the users' primary key.
const loginSelect = `SELECT ` + rowColumns + `
	FROM userlist_logins l
	CROSS JOIN LATERAL (
		SELECT * FROM userlist_users u
		WHERE u.workspace_id = l.workspace_id AND u.user_id = l.user_id
		LIMIT 1
	) u`

// loginOrder is the sort key of userlist_logins_sort_idx (indexes.sql).
const loginOrder = `coalesce(l.last_login_at, '-infinity'::timestamptz)`

// loginKey is the spelling of a last login in a cursor: microseconds since
// 1970, or "never" (the database keeps microseconds, so it is exact).
func loginKey(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

const neverKey = "never"

var (
	minLoginMicros = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxLoginMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

func parseLoginKey(s string) (pgtype.Timestamptz, error) {
	if s == neverKey {
		return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
	}
	us, err := strconv.ParseInt(s, 10, 64)
	// Bounded to the years RFC 3339 spells, which the database holds: a
	// forged cursor with a correct check is refused, not a database error.
	if err != nil || us < minLoginMicros || us > maxLoginMicros {
		return pgtype.Timestamptz{}, errors.New("not a last-login cursor")
	}
	return pgtype.Timestamptz{Time: time.UnixMicro(us).UTC(), Valid: true}, nil
}

// listSQL builds the page query of a validated filter and its arguments.
// The conditions on status or role pick the matching index; the keyset
// condition is a row comparison the index can start from. Sorted by last
// login, the logins' index gives the order and the other filters are
// checked on the rows it yields.
func listSQL(ws uuid.UUID, f filter) (string, []any) {
	var sb strings.Builder
	args := projections.Args{projections.PGID(ws)}
	arg := args.Add
	if f.byLogin() {
		sb.WriteString(loginSelect + "\n\tWHERE l.workspace_id = $1")
	} else {
		sb.WriteString(rowSelect + "\n\tWHERE u.workspace_id = $1")
	}
	if f.sinceKey != "" {
		sb.WriteString(" AND u.status <> 'invited' AND " + loginOrder + " < " + arg(pgtype.Timestamptz{Time: f.since, Valid: true}))
	}
	if f.status != "" {
		sb.WriteString(" AND u.status = " + arg(f.status))
	}
	if f.role != "" {
		sb.WriteString(" AND u.role = " + arg(f.role))
	}
	if f.q != "" {
		sb.WriteString(" AND u.search LIKE '%' || lower(" + arg(escapeLike(f.q)) + ") || '%'")
	}
	switch {
	case f.sort == "":
		if f.after != nil {
			sb.WriteString(" AND (u.sort_key, u.user_id) > (" + arg(f.after.sortKey) + ", " + arg(projections.PGID(f.after.userID)) + ")")
		}
		sb.WriteString(" ORDER BY u.sort_key, u.user_id")
	case f.sort == SortLastLogin:
		if f.after != nil {
			sb.WriteString(" AND (" + loginOrder + ", l.user_id) > (" + arg(f.after.login) + ", " + arg(projections.PGID(f.after.userID)) + ")")
		}
		sb.WriteString(" ORDER BY " + loginOrder + ", l.user_id")
	default:
		if f.after != nil {
			sb.WriteString(" AND (" + loginOrder + ", l.user_id) < (" + arg(f.after.login) + ", " + arg(projections.PGID(f.after.userID)) + ")")
		}
		sb.WriteString(" ORDER BY " + loginOrder + " DESC, l.user_id DESC")
	}
	sb.WriteString(" LIMIT " + arg(f.limit+1))
	return sb.String(), args
}

// escapeLike makes s match itself in a LIKE pattern (escape character \).
func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// List answers one page of a workspace's user list, sorted by display name
// (lower case) then user id, or by last login (Filter.Sort). An invalid filter is a *domain.Error with the
// code invalid_input.
func (q *Queries) List(ctx context.Context, ws uuid.UUID, f Filter) (Page, error) {
	vf, err := validate(ws, f)
	if err != nil {
		return Page{}, err
	}
	sql, args := listSQL(ws, vf)
	if vf.q != "" {
		// Plan with the text known: whether the trigram index or the
		// ordered index is faster depends on how common the text is, and a
		// cached generic plan would guess.
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	rows, err := q.db.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("userlist: list: %w", err)
	}
	defer rows.Close()
	page, lastKey, more, err := scanPage(rows, vf.limit, q.now())
	if err != nil {
		return Page{}, fmt.Errorf("userlist: list: %w", err)
	}
	if more {
		last := page.Items[len(page.Items)-1]
		if vf.byLogin() {
			lastKey = neverKey
			if last.LastLoginAt != nil {
				lastKey = loginKey(*last.LastLoginAt)
			}
		}
		page.NextCursor = encodeCursor(ws, vf, cursor{sortKey: lastKey, userID: last.UserID})
	}
	return page, nil
}

// Get answers one person's row; false if they are not in the list.
func (q *Queries) Get(ctx context.Context, ws, user uuid.UUID) (Row, bool, error) {
	rows, err := q.db.Query(ctx, rowSelect+" WHERE u.workspace_id = $1 AND u.user_id = $2", projections.PGID(ws), projections.PGID(user))
	if err != nil {
		return Row{}, false, fmt.Errorf("userlist: get: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Row{}, false, fmt.Errorf("userlist: get: %w", err)
		}
		return Row{}, false, nil
	}
	r, _, err := scanRow(rows, q.now())
	if err != nil {
		return Row{}, false, fmt.Errorf("userlist: get: %w", err)
	}
	return r, true, nil
}

// AdminSummary answers how many active Admins the workspace has, so the list
// can flag a workspace with a single one (the product recommends two).
func (q *Queries) AdminSummary(ctx context.Context, ws uuid.UUID) (activeAdmins int, err error) {
	err = q.db.QueryRow(ctx, `SELECT count(*) FROM userlist_users
		WHERE workspace_id = $1 AND role = 'Admin' AND status = 'active'`, projections.PGID(ws)).Scan(&activeAdmins)
	if err != nil {
		return 0, fmt.Errorf("userlist: admin summary: %w", err)
	}
	return activeAdmins, nil
}

// scanPage reads a page query's rows (rowColumns, at most limit+1 of
// them): the first limit, the sort key of the last of those, and whether
// there are more. It closes rows.
func scanPage(rows pgx.Rows, limit int, now time.Time) (page Page, lastKey string, more bool, err error) {
	defer rows.Close()
	page.Items = make([]Row, 0, min(limit, 64))
	for rows.Next() {
		if len(page.Items) == limit {
			more = true
			break
		}
		r, sortKey, err := scanRow(rows, now)
		if err != nil {
			return Page{}, "", false, err
		}
		page.Items = append(page.Items, r)
		lastKey = sortKey
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Page{}, "", false, err
	}
	return page, lastKey, more, nil
}

func scanRow(rows pgx.Rows, now time.Time) (Row, string, error) {
	var (
		r                               Row
		name, emailStatus               pgtype.Text
		lastLogin, invitedAt, expiresAt pgtype.Timestamptz
		roleUntil                       pgtype.Timestamptz
		userID, invID, invitedBy        pgtype.UUID
		expired                         bool
		attempt                         int32
		role, status, sortKey           string
	)
	if err := rows.Scan(&userID, &name, &r.Email, &role, &status, &lastLogin, &invID,
		&invitedAt, &invitedBy, &expiresAt, &expired, &attempt, &emailStatus, &sortKey, &roleUntil); err != nil {
		return Row{}, "", err
	}
	r.UserID, r.Role, r.Status = userID.Bytes, domain.Role(role), domain.Status(status)
	r.DisplayName = r.Email
	if name.Valid {
		r.Name, r.DisplayName = &name.String, name.String
	}
	if lastLogin.Valid {
		t := lastLogin.Time
		r.LastLoginAt = &t
	}
	if roleUntil.Valid {
		t := roleUntil.Time
		r.RoleUntil = &t
	}
	if invID.Valid {
		r.Invitation = &Invitation{
			ID: invID.Bytes, InvitedAt: invitedAt.Time, InvitedBy: invitedBy.Bytes,
			ExpiresAt: expiresAt.Time, Attempt: int(attempt), EmailStatus: emailStatus.String,
			Expired: expired || (expiresAt.Valid && !now.Before(expiresAt.Time)),
		}
	}
	return r, sortKey, nil
}

// PersonRow is one person's row in one workspace.
type PersonRow struct {
	WorkspaceID uuid.UUID
	Row
}

// Person answers a person's rows in every workspace (memberships and
// pending invitations), by workspace id. No index leads with user_id: the
// platform asks this rarely (an account's export or deletion), so it scans
// rather than make every write keep one more index; the rows then come one
// primary-key lookup each (a person has few).
func (q *Queries) Person(ctx context.Context, user uuid.UUID) ([]PersonRow, error) {
	rows, err := q.db.Query(ctx, `SELECT workspace_id FROM userlist_users WHERE user_id = $1 ORDER BY workspace_id`, projections.PGID(user))
	if err != nil {
		return nil, fmt.Errorf("userlist: person: %w", err)
	}
	wss, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uuid.UUID, error) {
		var ws pgtype.UUID
		err := r.Scan(&ws)
		return ws.Bytes, err
	})
	if err != nil {
		return nil, fmt.Errorf("userlist: person: %w", err)
	}
	out := []PersonRow{}
	for _, ws := range wss {
		r, ok, err := q.Get(ctx, ws, user)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, PersonRow{WorkspaceID: ws, Row: r})
		}
	}
	return out, nil
}
