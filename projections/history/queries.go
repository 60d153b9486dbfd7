package history

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB = projections.DB

// Queries reads the history.
type Queries struct{ db DB }

// NewQueries returns the history's queries on db.
func NewQueries(db DB) *Queries {
	return &Queries{db: projections.NeedDB("history: NewQueries", db)}
}

// AsOf is a past moment: a position (the event at it included) or, if
// Position is zero, an instant.
type AsOf struct {
	Position domain.Position
	Time     time.Time
}

func (a AsOf) String() string {
	if !a.Position.IsZero() {
		return a.Position.String()
	}
	return a.Time.UTC().Format(time.RFC3339Nano)
}

// ParseAsOf reads the asOf parameter: a position as the API writes it
// (<commit>-<prepare>) or an RFC 3339 instant. A bad value is a
// *domain.Error with the code invalid_input about "asOf".
func ParseAsOf(s string) (AsOf, error) {
	s = strings.TrimSpace(s)
	if p, err := domain.ParsePosition(s); err == nil && !p.IsZero() {
		return AsOf{Position: p}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return AsOf{Time: t}, nil
	}
	return AsOf{}, &domain.Error{Code: domain.CodeInvalidInput, Field: "asOf",
		Message: "asOf is neither an RFC 3339 instant (e.g. 2030-03-31T23:59:59Z) nor a position (<commit>-<prepare>)"}
}

// asOfCondition answers the condition "the interval contains a", with its
// arguments added to args.
func asOfCondition(a AsOf, args *projections.Args) (string, error) {
	arg := args.Add
	if a.Position.IsZero() {
		t := arg(a.Time)
		return "i.valid_from_at <= " + t + " AND (i.valid_to_at IS NULL OR i.valid_to_at > " + t + ")", nil
	}
	c, p, err := projections.PositionColumns(a.Position)
	if err != nil {
		return "", &domain.Error{Code: domain.CodeInvalidInput, Field: "asOf", Message: "asOf is not a position of this store"}
	}
	ca, pa := arg(c), arg(p)
	return "(i.valid_from_commit, i.valid_from_prepare) <= (" + ca + ", " + pa + ") AND (i.valid_to_commit IS NULL OR (i.valid_to_commit, i.valid_to_prepare) > (" + ca + ", " + pa + "))", nil
}

// List answers one page of the workspace's user list as it was at a: the
// same rows, order, filters and paging as userlist.Queries.List. An
// invitation counts as expired if its expiry was recorded by then or, as of
// an instant, if its time was up at that instant.
func (q *Queries) List(ctx context.Context, ws uuid.UUID, a AsOf, f userlist.Filter) (userlist.Page, error) {
	v, err := userlist.Check(f)
	if err != nil {
		return userlist.Page{}, err
	}
	if f.Cursor != "" {
		place, err := decodeCursor(f.Cursor, ws, a, v)
		if err != nil {
			return userlist.Page{}, &domain.Error{Code: domain.CodeInvalidInput, Field: "cursor",
				Message: fmt.Sprintf("not a cursor of this list (%v); start again from the first page", err)}
		}
		v.After = &place
	}
	// As of a position, only a recorded expiry counts (the zero time is
	// before every expiry time): a position names an event, not an instant.
	now := a.Time
	args := projections.Args{projections.PGID(ws)}
	arg := args.Add
	cond, err := asOfCondition(a, &args)
	if err != nil {
		return userlist.Page{}, err
	}
	var sb strings.Builder
	sb.WriteString(`SELECT i.user_id, i.name, i.email, i.role, i.status, i.last_login_at,
		i.invitation_id, i.invited_at, i.invited_by, i.expires_at, i.expired, i.attempt,
		i.email_status, i.sort_key, i.role_until
	FROM membership_intervals i WHERE i.workspace_id = $1 AND ` + cond)
	if v.Status != "" {
		sb.WriteString(" AND i.status = " + arg(v.Status))
	}
	if v.Role != "" {
		sb.WriteString(" AND i.role = " + arg(v.Role))
	}
	if v.Q != "" {
		sb.WriteString(" AND i.search LIKE '%' || lower(" + arg(userlist.EscapeLike(v.Q)) + ") || '%'")
	}
	if v.After != nil {
		sb.WriteString(" AND (i.sort_key, i.user_id) > (" + arg(v.After.SortKey) + ", " + arg(projections.PGID(v.After.UserID)) + ")")
	}
	sb.WriteString(" ORDER BY i.sort_key, i.user_id LIMIT " + arg(v.Limit+1))
	rows, err := q.db.Query(ctx, sb.String(), args...)
	if err != nil {
		return userlist.Page{}, fmt.Errorf("history: list: %w", err)
	}
	page, lastKey, more, err := userlist.ScanPage(rows, v.Limit, now)
	if err != nil {
		return userlist.Page{}, fmt.Errorf("history: list: %w", err)
	}
	if more {
		last := page.Items[len(page.Items)-1]
		page.NextCursor = encodeCursor(ws, a, v, userlist.Place{SortKey: lastKey, UserID: last.UserID})
	}
	return page, nil
}

// AdminSummary answers how many active Admins the workspace had at a, as
// userlist.Queries.AdminSummary does for now.
func (q *Queries) AdminSummary(ctx context.Context, ws uuid.UUID, a AsOf) (int, error) {
	args := projections.Args{projections.PGID(ws)}
	cond, err := asOfCondition(a, &args)
	if err != nil {
		return 0, err
	}
	var n int
	if err := q.db.QueryRow(ctx, `SELECT count(*) FROM membership_intervals i
		WHERE i.workspace_id = $1 AND i.role = 'Admin' AND i.status = 'active' AND `+cond, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("history: admin summary: %w", err)
	}
	return n, nil
}

// Item is one interval of a member's history: their role and status from
// one change to the next, with who made the change (nil for the system),
// the event's type name and id.
type Item struct {
	From      time.Time     `json:"from"`
	To        *time.Time    `json:"to"`
	Role      domain.Role   `json:"role"`
	Status    domain.Status `json:"status"`
	ChangedBy *uuid.UUID    `json:"changedBy"`
	Action    string        `json:"action"`
	EventID   uuid.UUID     `json:"eventId"`
}

// History answers a person's intervals of role and status in the
// workspace, oldest first; false if they were never in its list. Changes
// the history does not show (a login, an e-mail's delivery) continue the
// interval they fall in.
func (q *Queries) History(ctx context.Context, ws, user uuid.UUID) ([]Item, bool, error) {
	all, err := q.intervals(ctx, "workspace_id = $1 AND user_id = $2", projections.PGID(ws), projections.PGID(user))
	if err != nil {
		return nil, false, err
	}
	if len(all) == 0 {
		return []Item{}, false, nil
	}
	return all[0].Items, true, nil
}

// WorkspaceHistory is a person's history in one workspace.
type WorkspaceHistory struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	Items       []Item    `json:"items"`
}

// ForPerson answers a person's history in each of the workspaces given
// that they were ever in the list of (others are left out), by workspace
// id. No index leads with user_id (writes would keep one more for a rare
// read), so the caller names the workspaces: an account export has them
// from the person's audit entries, each read by primary key.
func (q *Queries) ForPerson(ctx context.Context, user uuid.UUID, workspaces []uuid.UUID) ([]WorkspaceHistory, error) {
	ids := make([]pgtype.UUID, len(workspaces))
	for i, ws := range workspaces {
		ids[i] = projections.PGID(ws)
	}
	return q.intervals(ctx, "workspace_id = ANY($1) AND user_id = $2", ids, projections.PGID(user))
}

// intervals reads the intervals that match where, one person's per
// workspace, and joins consecutive ones that show the same role and status.
func (q *Queries) intervals(ctx context.Context, where string, args ...any) ([]WorkspaceHistory, error) {
	rows, err := q.db.Query(ctx, `SELECT workspace_id, valid_from_at, valid_to_at, valid_to_commit, valid_to_prepare,
			valid_from_commit, valid_from_prepare, role, status, changed_by, action, event_id
		FROM membership_intervals WHERE `+where+`
		ORDER BY workspace_id, valid_from_commit, valid_from_prepare`, args...)
	if err != nil {
		return nil, fmt.Errorf("history: member: %w", err)
	}
	defer rows.Close()
	out := []WorkspaceHistory{}
	var lastTo, lastToP pgtype.Int8
	for rows.Next() {
		var (
			ws, by       pgtype.UUID
			eventID      pgtype.UUID
			from         time.Time
			to           pgtype.Timestamptz
			tc, tp       pgtype.Int8
			fc, fp       int64
			role, status string
			action       string
		)
		if err := rows.Scan(&ws, &from, &to, &tc, &tp, &fc, &fp, &role, &status, &by, &action, &eventID); err != nil {
			return nil, fmt.Errorf("history: member: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].WorkspaceID != ws.Bytes {
			out = append(out, WorkspaceHistory{WorkspaceID: ws.Bytes, Items: []Item{}})
			lastTo = pgtype.Int8{}
		}
		h := &out[len(out)-1]
		if n := len(h.Items); n > 0 && lastTo.Valid && lastTo.Int64 == fc && lastToP.Int64 == fp &&
			string(h.Items[n-1].Role) == role && string(h.Items[n-1].Status) == status {
			h.Items[n-1].To = timePtr(to)
		} else {
			it := Item{From: from, To: timePtr(to), Role: domain.Role(role), Status: domain.Status(status), Action: action, EventID: eventID.Bytes}
			if by.Valid {
				id := uuid.UUID(by.Bytes)
				it.ChangedBy = &id
			}
			h.Items = append(h.Items, it)
		}
		lastTo, lastToP = tc, tp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: member: %w", err)
	}
	return out, nil
}

func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

// The cursor's opaque form is base64url(version ‖ user id ‖ check ‖ sort
// key), as the current list's; its check also covers the moment, so a page
// of one moment does not continue another's.
const (
	cursorVersion = 1
	cursorSumLen  = 8
	maxCursorLen  = 2048
)

func encodeCursor(ws uuid.UUID, a AsOf, f userlist.Checked, c userlist.Place) string {
	b := make([]byte, 0, 1+16+cursorSumLen+len(c.SortKey))
	b = append(b, cursorVersion)
	b = append(b, c.UserID[:]...)
	b = append(b, cursorSum(ws, a, f, c)...)
	b = append(b, c.SortKey...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, ws uuid.UUID, a AsOf, f userlist.Checked) (userlist.Place, error) {
	if len(s) > maxCursorLen {
		return userlist.Place{}, errors.New("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		return userlist.Place{}, errors.New("not base64url")
	}
	if len(b) < 1+16+cursorSumLen || b[0] != cursorVersion {
		return userlist.Place{}, errors.New("unknown format")
	}
	var c userlist.Place
	copy(c.UserID[:], b[1:17])
	sum, key := b[17:17+cursorSumLen], b[17+cursorSumLen:]
	if !utf8.Valid(key) || bytes.IndexByte(key, 0) >= 0 {
		return userlist.Place{}, errors.New("damaged")
	}
	c.SortKey = string(key)
	if !bytes.Equal(sum, cursorSum(ws, a, f, c)) {
		return userlist.Place{}, errors.New("damaged, or made for another workspace, moment or filter")
	}
	return c, nil
}

func cursorSum(ws uuid.UUID, a AsOf, f userlist.Checked, c userlist.Place) []byte {
	h := sha256.New()
	h.Write([]byte("usersd history cursor v1\x00"))
	h.Write(ws[:])
	for _, s := range []string{a.String(), f.Status, f.Role, f.Q, c.SortKey} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(c.UserID[:])
	return h.Sum(nil)[:cursorSumLen]
}
