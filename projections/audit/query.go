package audit

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Limits of a page of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Export formats.
const (
	FormatNDJSON = "ndjson" // one Entry JSON object a line (application/x-ndjson)
	FormatCSV    = "csv"    // RFC 4180 with a header row (text/csv)
)

// Filter selects entries of one workspace. Zero fields select anything.
type Filter struct {
	// Actor and Target select entries by the actor's or the target's user id.
	Actor, Target uuid.UUID
	// Action is an event type name, e.g. "RoleChanged".
	Action string
	// From and To bound occurredAt: From <= occurredAt < To.
	From, To time.Time
	// Limit is the page size of List: 0 means DefaultLimit, more than
	// MaxLimit means MaxLimit. Export ignores it.
	Limit int
	// Cursor is List's NextCursor of the previous page; "" starts at the
	// newest entry. Export ignores it.
	Cursor string
}

// Page is one page of List, newest entry first.
type Page struct {
	Items []Entry `json:"items"`
	// NextCursor continues with older entries; "" when there are none.
	NextCursor string `json:"nextCursor,omitempty"`
}

// Entry is one audit entry as the API shows it.
type Entry struct {
	WorkspaceID uuid.UUID
	Seq         int64
	EventID     uuid.UUID
	OccurredAt  time.Time
	// Action is the event's type name, e.g. "UserInvited".
	Action string
	Actor  Actor
	// Target is who the event is about, nil when it is about no user
	// (WorkspaceSettingsChanged).
	Target *Target
	// Details holds the event's particulars as a JSON object, e.g.
	// fromRole/toRole for RoleChanged.
	Details       json.RawMessage
	CorrelationID string
	CausationID   string
	// Request is nil when the event came from no request we know of.
	Request  *domain.RequestContext
	Position domain.Position
	PrevHash string
	Hash     string
}

// Actor is who caused an entry's event, as they were at the time.
type Actor struct {
	ID     uuid.UUID // uuid.Nil: none (the platform or our own background work)
	Email  string    // "": not known
	System bool
}

// Target is who an entry's event is about, as they were at the time.
type Target struct {
	ID    uuid.UUID
	Email string // "": not known
}

// List returns a page of a workspace's entries matching f, newest first
// (keyset pagination on seq: pages stay stable while entries are added).
// Bad filter values are *domain.Error with code CodeInvalidInput and a
// message naming the parameter.
func List(ctx context.Context, db DB, ws uuid.UUID, f Filter) (Page, error) {
	where, args, err := f.where(ws)
	if err != nil {
		return Page{}, err
	}
	limit, err := f.limit()
	if err != nil {
		return Page{}, err
	}
	if f.Cursor != "" {
		before, err := parseCursor(f.Cursor)
		if err != nil {
			return Page{}, err
		}
		args = append(args, before)
		where += " AND seq < $" + strconv.Itoa(len(args))
	}
	args = append(args, limit+1)
	sql := `SELECT ` + columns + ` FROM audit_entries WHERE ` + where +
		` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))

	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("audit list %s: %w", ws, err)
	}
	defer rows.Close()
	page := Page{Items: make([]Entry, 0, min(limit, 64))}
	var r row
	targets := r.scanTargets()
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return Page{}, fmt.Errorf("audit list %s: %w", ws, err)
		}
		if len(page.Items) == limit {
			page.NextCursor = formatCursor(page.Items[limit-1].Seq)
			break
		}
		page.Items = append(page.Items, r.entry())
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("audit list %s: %w", ws, err)
	}
	return page, nil
}

// Export writes every entry of a workspace matching f (Limit and Cursor
// aside) to w, oldest first, as NDJSON or CSV. It writes row by row as the
// database sends them, through a small buffer, so memory stays flat however
// long the history. An error after the first bytes leaves w truncated.
func Export(ctx context.Context, db DB, ws uuid.UUID, f Filter, w io.Writer, format string) error {
	if format != FormatNDJSON && format != FormatCSV {
		return invalid("format", "must be %q or %q, got %q", FormatNDJSON, FormatCSV, format)
	}
	where, args, err := f.where(ws)
	if err != nil {
		return err
	}
	rows, err := db.Query(ctx, `SELECT `+columns+` FROM audit_entries WHERE `+where+` ORDER BY seq`, args...)
	if err != nil {
		return fmt.Errorf("audit export %s: %w", ws, err)
	}
	defer rows.Close()

	var r row
	targets := r.scanTargets()
	bw := bufio.NewWriterSize(w, 32<<10)
	var cw *csv.Writer
	var record []string
	if format == FormatCSV {
		cw = csv.NewWriter(bw)
		record = make([]string, len(csvHeader))
		if err := cw.Write(csvHeader); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
	}
	var line []byte
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
		e := r.entry()
		if cw != nil {
			record, line = e.csvRecord(record, line)
			err = cw.Write(record)
		} else {
			line = append(e.appendJSON(line[:0]), '\n')
			_, err = bw.Write(line)
		}
		if err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit export %s: %w", ws, err)
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("audit export %s: %w", ws, err)
	}
	return nil
}

// where renders f as a WHERE clause over audit_entries with its arguments.
func (f Filter) where(ws uuid.UUID) (string, []any, error) {
	var b strings.Builder
	args := []any{ws}
	b.WriteString("workspace_id = $1")
	add := func(cond string, v any) {
		args = append(args, v)
		b.WriteString(" AND ")
		b.WriteString(cond)
		b.WriteString(" $")
		b.WriteString(strconv.Itoa(len(args)))
	}
	if f.Actor != uuid.Nil {
		add("actor_id =", f.Actor)
	}
	if f.Target != uuid.Nil {
		add("target_id =", f.Target)
	}
	if f.Action != "" {
		if !slices.Contains(domain.EventTypeNames(), f.Action) || strings.ContainsAny(f.Action, `'\`) {
			names := domain.EventTypeNames()
			slices.Sort(names)
			return "", nil, invalid("action", "%q is not an event type; use one of %s", f.Action, strings.Join(names, ", "))
		}
		// A literal, not a parameter: the partial index on action (all
		// but UserLoggedIn) is usable only when the planner sees the value.
		// Safe: the value is one of the registered type names.
		b.WriteString(" AND action = '" + f.Action + "'")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return "", nil, invalid("from", "must be before to (from %s, to %s)", f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano))
	}
	if !f.From.IsZero() {
		add("occurred_at >=", f.From)
	}
	if !f.To.IsZero() {
		add("occurred_at <", f.To)
	}
	return b.String(), args, nil
}

func (f Filter) limit() (int, error) {
	switch {
	case f.Limit < 0:
		return 0, invalid("limit", "must be between 1 and %d, got %d", MaxLimit, f.Limit)
	case f.Limit == 0:
		return DefaultLimit, nil
	case f.Limit > MaxLimit:
		return MaxLimit, nil
	}
	return f.Limit, nil
}

func invalid(param, format string, args ...any) error {
	return &domain.Error{Code: domain.CodeInvalidInput, Message: param + ": " + fmt.Sprintf(format, args...)}
}

// cursorPrefix versions the cursor's opaque form.
const cursorPrefix = "audit.v1.before:"

func formatCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func parseCursor(c string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(raw), cursorPrefix); ok {
			// Only the spelling formatCursor writes: no sign, no leading
			// zeros, no line breaks (which the decoder skips).
			if seq, err := strconv.ParseInt(s, 10, 64); err == nil && seq > 0 && formatCursor(seq) == c {
				return seq, nil
			}
		}
	}
	return 0, invalid("cursor", "not a cursor this endpoint returned")
}

// entry turns a stored row into its API form. Details come in the
// canonical form that was hashed (keys sorted), not jsonb's key order, so an
// export carries everything needed to recompute the chain.
func (r *row) entry() Entry {
	if d, err := canonicalJSON(r.details); err == nil {
		r.details = d
	}
	e := Entry{
		WorkspaceID:   r.workspaceID.Bytes,
		Seq:           r.seq,
		EventID:       r.eventID.Bytes,
		OccurredAt:    r.occurredAt.UTC(),
		Action:        r.action,
		Actor:         Actor{ID: uuidOrNil(r.actorID.Bytes, r.actorID.Valid), Email: r.actorEmail.String, System: r.actorSystem},
		Details:       r.details,
		CorrelationID: r.correlationID.String,
		CausationID:   r.causationID.String,
		Position:      domain.Position{Commit: uint64(r.commitPosition), Prepare: uint64(r.preparePosition)},
		PrevHash:      r.prevHash,
		Hash:          r.hash,
	}
	if r.targetID.Valid {
		e.Target = &Target{ID: r.targetID.Bytes, Email: r.targetEmail.String}
	}
	if r.requestIP.Valid || r.requestUserAgent.Valid {
		e.Request = &domain.RequestContext{IP: r.requestIP.String, UserAgent: r.requestUserAgent.String}
	}
	return e
}

func uuidOrNil(b [16]byte, valid bool) uuid.UUID {
	if !valid {
		return uuid.Nil
	}
	return b
}
