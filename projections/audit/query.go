package audit

import (
	"bytes"
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
	"github.com/usersd/usersd/internal/pii"
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
	// Sealed holds the values above that may be personal (addresses,
	// request, details) as stored and hashed, which are shown opened;
	// nil in an entry not read for display.
	Sealed *StoredValues
}

// Actor is who caused an entry's event, as they were at the time.
type Actor struct {
	ID     uuid.UUID // uuid.Nil: none (the platform or our own background work)
	Email  string    // "": not known, or erased
	System bool
	// Erased is true when the actor's personal values were erased (their
	// account deleted): Email and the request are then unknown.
	Erased bool
}

// Target is who an entry's event is about, as they were at the time.
type Target struct {
	ID    uuid.UUID
	Email string // "": not known, or erased
	// Erased is true when the target's personal values were erased: Email
	// and the personal details (names, a mail server's answer) are unknown.
	Erased bool
}

// List returns a page of a workspace's entries matching f, newest first
// (keyset pagination on seq: pages stay stable while entries are added).
// Bad filter values are *domain.Error with code CodeInvalidInput whose
// Field names the parameter. Personal values are opened with keys (see
// Keys).
func List(ctx context.Context, db DB, keys Keys, ws uuid.UUID, f Filter) (Page, error) {
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

	if keys == nil {
		return Page{}, errNoKeys
	}
	stored, err := readRows(ctx, db, sql, args)
	if err != nil {
		return Page{}, fmt.Errorf("audit list %s: %w", ws, err)
	}
	var page Page
	if len(stored) > limit {
		stored = stored[:limit]
		page.NextCursor = formatCursor(stored[limit-1].seq)
	}
	if page.Items, err = openRows(ctx, keys, stored); err != nil {
		return Page{}, fmt.Errorf("audit list %s: %w", ws, err)
	}
	return page, nil
}

// readRows runs a query over audit_entries' columns and answers its rows,
// the connection released.
func readRows(ctx context.Context, db DB, sql string, args []any) ([]row, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	var r row
	targets := r.scanTargets()
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return nil, err
		}
		r.details = slices.Clone(r.details) // the next Scan may reuse it
		out = append(out, r)
	}
	rows.Close()
	return out, rows.Err()
}

// ExportPage is how many entries Export reads per query.
const ExportPage = 1000

// exportChunk bounds each Write of Export, so that a slow reader is waited
// on in small steps (a caller's write deadline renewed per Write measures
// progress).
const exportChunk = 32 << 10

// Export writes every entry of a workspace matching f (Limit and Cursor
// aside) to w, oldest first, as NDJSON or CSV: the entries there were when
// it started, so a busy workspace cannot keep an export going forever.
//
// It never holds a database connection while it writes: it reads a keyset
// page of ExportPage entries, encodes it, releases the connection, and only
// then writes the page to w in writes of at most 32 KiB. A reader that
// stalls (a client that stops reading an HTTP answer) therefore holds
// memory for one page and no connection, however long it stalls. An error
// after the first bytes leaves w truncated.
func Export(ctx context.Context, db DB, keys Keys, ws uuid.UUID, f Filter, w io.Writer, format string) error {
	return ExportSigned(ctx, db, keys, ws, f, w, format, nil)
}

// ExportSigned is Export, and with a signer an NDJSON export ends with a
// checkpoint line: the signed head of the last entry exported,
//
//	{"type":"checkpoint","workspaceId":"…","seq":N,"hash":"…","signedAt":"…","keyId":"…","signature":"…"}
//
// Unfiltered, that is the chain's head when the export started, and the
// line vouches for the whole file: every entry from seq 1 links to it. A
// filtered export signs its own last entry, which the chain held then; the
// entries before it are vouched for only as far as they link to it without
// a gap (see VerifyExport). An export of no entries signs seq 0, hash "",
// which every chain holds. One signature per export, whatever its length.
// CSV exports have no checkpoint: verify NDJSON ones.
//
// Personal values are opened with keys for display, erased ones null; each
// NDJSON entry also carries them as stored ("sealed"), which is what its
// hash covers, so the chain checks out offline without any key, before and
// after an erasure.
func ExportSigned(ctx context.Context, db DB, keys Keys, ws uuid.UUID, f Filter, w io.Writer, format string, signer *Signer) error {
	if format != FormatNDJSON && format != FormatCSV {
		return invalid("format", "must be %q or %q, got %q", FormatNDJSON, FormatCSV, format)
	}
	if keys == nil {
		return errNoKeys
	}
	where, args, err := f.where(ws)
	if err != nil {
		return err
	}
	var last int64
	if err := db.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries WHERE workspace_id = $1`, ws).Scan(&last); err != nil {
		return fmt.Errorf("audit export %s: %w", ws, err)
	}
	args = append(args, last, int64(0))
	sql := `SELECT ` + columns + ` FROM audit_entries WHERE ` + where +
		` AND seq <= $` + strconv.Itoa(len(args)-1) + ` AND seq > $` + strconv.Itoa(len(args)) +
		` ORDER BY seq LIMIT ` + strconv.Itoa(ExportPage)

	var page bytes.Buffer
	var cw *csv.Writer
	var record []string
	if format == FormatCSV {
		cw = csv.NewWriter(&page)
		record = make([]string, len(csvHeader))
		if err := cw.Write(csvHeader); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
	}
	var line []byte
	head := Head{WorkspaceID: ws}
	for after := int64(0); after < last; {
		args[len(args)-1] = after
		n, err := exportPage(ctx, db, keys, sql, args, func(e Entry) error {
			after = e.Seq
			head.Seq, head.Hash = e.Seq, e.Hash
			if cw != nil {
				record, line = e.csvRecord(record, line)
				return cw.Write(record)
			}
			line = append(e.appendJSON(line[:0]), '\n')
			_, err := page.Write(line)
			return err
		})
		if err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
		if cw != nil {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return fmt.Errorf("audit export %s: %w", ws, err)
			}
		}
		// The page's connection is back in the pool: now wait on w.
		if err := writeChunked(w, page.Bytes()); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
		page.Reset()
		if n < ExportPage {
			break
		}
	}
	if signer != nil && format == FormatNDJSON {
		page.Write(appendCheckpoint(line[:0], signer.Sign(head, time.Now())))
	}
	if page.Len() > 0 { // the CSV header of an empty export, the checkpoint
		if err := writeChunked(w, page.Bytes()); err != nil {
			return fmt.Errorf("audit export %s: %w", ws, err)
		}
	}
	return nil
}

// exportPage runs one page's query, releases the connection, opens the
// entries and hands each to add.
func exportPage(ctx context.Context, db DB, keys Keys, sql string, args []any, add func(Entry) error) (int, error) {
	stored, err := readRows(ctx, db, sql, args)
	if err != nil {
		return 0, err
	}
	entries, err := openRows(ctx, keys, stored)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if err := add(e); err != nil {
			return 0, err
		}
	}
	return len(entries), nil
}

// writeChunked writes b to w in writes of at most exportChunk bytes.
func writeChunked(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), exportChunk)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
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
	return &domain.Error{Code: domain.CodeInvalidInput, Field: param, Message: fmt.Sprintf(format, args...)}
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

// ForPerson hands each to each, opened for display (List's form), the
// entries of every workspace whose actor or target is user: what the
// history holds about a person (GET /v1/accounts/{id}/export). Entries come
// ordered by workspace, then seq; they are read ExportPage at a time, in
// keyset pages, through the actor and target indexes, which lead with the
// user id; no connection is held while each runs. A deleted person's
// entries are still found (by id), their personal values erased.
//
// Only the person's own values are opened: the other party of an entry
// (the Admin who removed them, the people they invited) shows by id only,
// with no address, request context or stored forms, so that one person's
// export discloses nobody else's data.
func ForPerson(ctx context.Context, db DB, keys Keys, user uuid.UUID, each func(Entry) error) error {
	if keys == nil {
		return errNoKeys
	}
	keys = onlyKeyOf{keys, user}
	const sql = `SELECT ` + columns + ` FROM audit_entries
		WHERE (actor_id = $1 OR target_id = $1) AND (workspace_id, seq) > ($2, $3)
		ORDER BY workspace_id, seq LIMIT $4`
	var ws uuid.UUID
	var seq int64
	for {
		stored, err := readRows(ctx, db, sql, []any{user, ws, seq, ExportPage})
		if err != nil {
			return fmt.Errorf("audit entries of %s: %w", user, err)
		}
		entries, err := openRows(ctx, keys, stored)
		if err != nil {
			return fmt.Errorf("audit entries of %s: %w", user, err)
		}
		for _, e := range entries {
			if err := each(withholdOthers(e, user)); err != nil {
				return err
			}
		}
		if len(stored) < ExportPage {
			return nil
		}
		last := stored[len(stored)-1]
		ws, seq = last.workspaceID.Bytes, last.seq
	}
}

// onlyKeyOf looks up user's key only: ForPerson opens no one else's values.
type onlyKeyOf struct {
	Keys
	user uuid.UUID
}

func (o onlyKeyOf) Lookup(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	if !slices.Contains(subjects, o.user) {
		return map[uuid.UUID]*pii.Key{}, nil
	}
	return o.Keys.Lookup(ctx, []uuid.UUID{o.user})
}

// withholdOthers blanks what e holds about anyone but user, plain values
// written before sealing included: the other party's address, the request
// context of an actor who is not user, the target's personal details when
// the target is not user, and the stored forms.
func withholdOthers(e Entry, user uuid.UUID) Entry {
	e.Sealed = nil
	if e.Actor.ID != user {
		e.Actor.Email, e.Actor.Erased = "", false
		e.Request = nil
	}
	if e.Target != nil && e.Target.ID != user {
		t := *e.Target
		t.Email, t.Erased = "", false
		e.Target = &t
		if names := personalDetails[e.Action]; len(names) > 0 {
			e.Details = openDetails(e.Details, names, func(string) string { return "" })
		}
	}
	return e
}
