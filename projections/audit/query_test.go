package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/projectionstest"
)

// listFixture: workspace ws with 12 entries by two actors about two
// targets, and another workspace that must never show.
type listFixture struct {
	pool          *pgxpool.Pool
	ws            uuid.UUID
	owner, member person
	events        []domain.RecordedEvent // ws's events, in order
}

func newListFixture(t *testing.T) listFixture {
	t.Helper()
	pool, _ := pgtest.New(t)
	var h history
	f := listFixture{pool: pool, ws: uuid.New(), owner: newPerson("ada@acme.test"), member: newPerson("ivy@example.test")}
	other := uuid.New()
	var all []domain.RecordedEvent
	add := func(ev domain.Event, opts ...opt) {
		r := h.next(ev, opts...)
		all = append(all, r)
		if wsOf(ev) == f.ws {
			f.events = append(f.events, r)
		}
	}
	add(domain.WorkspaceCreated{WorkspaceID: f.ws, Name: "Acme", OwnerUserID: f.owner.id, OwnerEmail: f.owner.email})
	add(domain.WorkspaceCreated{WorkspaceID: other, Name: "Other", OwnerUserID: f.owner.id, OwnerEmail: f.owner.email})
	add(domain.UserInvited{WorkspaceID: f.ws, UserID: f.member.id, Email: f.member.email, Role: "Editor"}, by(f.owner.actor()))
	add(domain.UserInvited{WorkspaceID: other, UserID: f.member.id, Email: f.member.email, Role: "Editor"}, by(f.owner.actor()))
	add(domain.InvitationAccepted{WorkspaceID: f.ws, UserID: f.member.id, Email: f.member.email, Role: "Editor"}, by(f.member.actor()))
	for i := range 4 {
		add(domain.UserLoggedIn{WorkspaceID: f.ws, UserID: f.member.id}, by(f.member.actor()))
		add(domain.RoleChanged{WorkspaceID: f.ws, UserID: f.member.id, Email: f.member.email, FromRole: "Editor", ToRole: []string{"Monitor", "Editor", "Manager", "Editor"}[i]},
			by(f.owner.actor()))
	}
	add(domain.UserLoggedIn{WorkspaceID: f.ws, UserID: f.owner.id}, by(f.owner.actor()))
	apply(t, pool, all)
	if len(f.events) != 12 {
		t.Fatalf("fixture: got %d events in ws, want 12", len(f.events))
	}
	return f
}

// seqs lists the seqs of entries.
func seqs(es []audit.Entry) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	f := newListFixture(t)
	at := func(seq int) time.Time { return f.events[seq-1].Metadata.OccurredAt.Truncate(time.Microsecond) }
	cases := []struct {
		name   string
		filter audit.Filter
		want   []int64
	}{
		{"everything, newest first", audit.Filter{}, []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"actor", audit.Filter{Actor: f.member.id}, []int64{10, 8, 6, 4, 3}},
		{"target", audit.Filter{Target: f.owner.id}, []int64{12, 1}},
		{"action", audit.Filter{Action: "RoleChanged"}, []int64{11, 9, 7, 5}},
		{"actor and action", audit.Filter{Actor: f.owner.id, Action: "UserLoggedIn"}, []int64{12}},
		{"from (inclusive)", audit.Filter{From: at(10)}, []int64{12, 11, 10}},
		{"to (exclusive)", audit.Filter{To: at(3)}, []int64{2, 1}},
		{"from and to", audit.Filter{From: at(4), To: at(7)}, []int64{6, 5, 4}},
		{"target, action and range", audit.Filter{Target: f.member.id, Action: "UserLoggedIn", From: at(5), To: at(9)}, []int64{8, 6}},
		{"nothing matches", audit.Filter{Actor: uuid.New()}, []int64{}},
		{"known action without entries", audit.Filter{Action: "AccountRegistered"}, []int64{}},
	}
	for _, c := range cases {
		page, err := audit.List(context.Background(), f.pool, plainKeys, f.ws, c.filter)
		if err != nil {
			t.Errorf("%s: List: got %v, want no error", c.name, err)
			continue
		}
		if got := seqs(page.Items); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: seqs: got %v, want %v", c.name, got, c.want)
		}
		if page.NextCursor != "" {
			t.Errorf("%s: next cursor: got %q, want none on the last page", c.name, page.NextCursor)
		}
	}
}

func TestListPages(t *testing.T) {
	t.Parallel()
	f := newListFixture(t)
	ctx := context.Background()
	filter := audit.Filter{Actor: f.member.id, Limit: 2}
	var pages [][]int64
	for range 10 {
		page, err := audit.List(ctx, f.pool, plainKeys, f.ws, filter)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		pages = append(pages, seqs(page.Items))
		if page.NextCursor == "" {
			break
		}
		filter.Cursor = page.NextCursor
	}
	if want := [][]int64{{10, 8}, {6, 4}, {3}}; !reflect.DeepEqual(pages, want) {
		t.Errorf("pages of 2: got %v, want %v", pages, want)
	}

	// A page that ends exactly at the last entry has no next cursor.
	page, err := audit.List(ctx, f.pool, plainKeys, f.ws, audit.Filter{Action: "RoleChanged", Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if page.NextCursor != "" || len(page.Items) != 4 {
		t.Errorf("exact page: got %d items, cursor %q, want 4 and none", len(page.Items), page.NextCursor)
	}

	// Entries added after the first page do not shift the next ones.
	first, err := audit.List(ctx, f.pool, plainKeys, f.ws, audit.Filter{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	h := afterFixtures()
	apply(t, f.pool, logins(h, f.ws, f.member, 3))
	second, err := audit.List(ctx, f.pool, plainKeys, f.ws, audit.Filter{Limit: 5, Cursor: first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(second.Items), []int64{7, 6, 5, 4, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("second page after new entries: got %v, want %v", got, want)
	}
}

func TestListLimits(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	apply(t, pool, logins(h, ws, newPerson("p@example.test"), audit.MaxLimit+20))
	for _, c := range []struct {
		limit, want int
	}{{0, audit.DefaultLimit}, {1, 1}, {audit.MaxLimit, audit.MaxLimit}, {audit.MaxLimit + 1, audit.MaxLimit}, {1 << 30, audit.MaxLimit}} {
		page, err := audit.List(context.Background(), pool, plainKeys, ws, audit.Filter{Limit: c.limit})
		if err != nil {
			t.Fatalf("limit %d: %v", c.limit, err)
		}
		if len(page.Items) != c.want || page.NextCursor == "" {
			t.Errorf("limit %d: got %d items (next cursor %q), want %d and a next cursor", c.limit, len(page.Items), page.NextCursor, c.want)
		}
	}
}

func TestListRefusesBadInput(t *testing.T) {
	pool, _ := fresh(t)
	t1 := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		filter audit.Filter
		param  string
	}{
		{"unknown action", audit.Filter{Action: "UserDeleted"}, "action"},
		{"action in the wrong case", audit.Filter{Action: "roleChanged"}, "action"},
		{"garbage cursor", audit.Filter{Cursor: "not-a-cursor"}, "cursor"},
		{"forged cursor", audit.Filter{Cursor: "c2VxOjEw"}, "cursor"},
		{"negative limit", audit.Filter{Limit: -1}, "limit"},
		{"from after to", audit.Filter{From: t1, To: t1.Add(-time.Second)}, "from"},
		{"empty range", audit.Filter{From: t1, To: t1}, "from"},
	}
	for _, c := range cases {
		_, err := audit.List(context.Background(), pool, plainKeys, uuid.New(), c.filter)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != c.param {
			t.Errorf("%s: got %v, want a %s error naming %q", c.name, err, domain.CodeInvalidInput, c.param)
		}
		if err := audit.Export(context.Background(), pool, plainKeys, uuid.New(), audit.Filter{Action: c.filter.Action, From: c.filter.From, To: c.filter.To},
			&bytes.Buffer{}, audit.FormatNDJSON); (err == nil) != (c.param == "cursor" || c.param == "limit") {
			t.Errorf("%s: Export: got %v, want an error unless the parameter is List's alone", c.name, err)
		}
	}
	err := audit.Export(context.Background(), pool, plainKeys, uuid.New(), audit.Filter{}, &bytes.Buffer{}, "xml")
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != "format" {
		t.Errorf("Export as xml: got %v, want a %s error naming \"format\"", err, domain.CodeInvalidInput)
	}
}

// TestEntryJSON checks one entry's JSON form key by key, including the
// nulls of what is not known.
func TestEntryJSON(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	owner := newPerson("ada@acme.test")
	ev := h.next(domain.RoleChanged{WorkspaceID: ws, UserID: owner.id, Email: owner.email, FromRole: "Editor", ToRole: "Admin"},
		by(owner.actor()), withCorrelation("corr-1", "cause-1"), withRequest("203.0.113.9", "Firefox <1>"))
	settings := h.next(domain.WorkspaceSettingsChanged{WorkspaceID: ws})
	apply(t, pool, []domain.RecordedEvent{ev, settings})
	es := all(t, pool, ws)

	b, err := json.Marshal(es[0])
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("entry JSON %s: %v", b, err)
	}
	want := map[string]any{
		"seq":           1.0,
		"eventId":       ev.Metadata.EventID.String(),
		"workspaceId":   ws.String(),
		"occurredAt":    "2025-03-01T10:01:00.123456Z",
		"action":        "RoleChanged",
		"actor":         map[string]any{"id": owner.id.String(), "email": owner.email, "system": false, "erased": false},
		"target":        map[string]any{"id": owner.id.String(), "email": owner.email, "erased": false},
		"details":       map[string]any{"fromRole": "Editor", "toRole": "Admin"},
		"correlationId": "corr-1",
		"causationId":   "cause-1",
		"request":       map[string]any{"ip": "203.0.113.9", "userAgent": "Firefox <1>"},
		"position":      ev.Position.String(),
		"prevHash":      "",
		"hash":          es[0].Hash,
		// A plain history: stored as shown.
		"sealed": map[string]any{
			"actorEmail": owner.email, "targetEmail": owner.email, "requestIp": "203.0.113.9", "requestUserAgent": "Firefox <1>",
			"details": map[string]any{"fromRole": "Editor", "toRole": "Admin"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry JSON:\n got %v\nwant %v", got, want)
	}

	b, _ = json.Marshal(es[1])
	got = nil
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("entry JSON %s: %v", b, err)
	}
	for k, w := range map[string]any{
		"actor": map[string]any{"id": nil, "email": nil, "system": true, "erased": false}, "target": nil,
		"correlationId": nil, "causationId": nil, "request": nil, "prevHash": es[0].Hash,
	} {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("settings entry %q: got %v, want %v", k, got[k], w)
		}
	}
}

func TestExportNDJSON(t *testing.T) {
	t.Parallel()
	f := newListFixture(t)
	var buf bytes.Buffer
	if err := audit.Export(context.Background(), f.pool, plainKeys, f.ws, audit.Filter{Actor: f.member.id, Limit: 1, Cursor: "ignored"}, &buf, audit.FormatNDJSON); err != nil {
		t.Fatalf("Export: %v", err)
	}
	entries := all(t, f.pool, f.ws)
	var want []string
	for _, e := range entries {
		if e.Actor.ID == f.member.id {
			b, _ := json.Marshal(e)
			want = append(want, string(b))
		}
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NDJSON lines, oldest first:\n got %q\nwant %q", got, want)
	}
	for i, line := range got {
		var v struct {
			Seq   int64 `json:"seq"`
			Actor struct{ Email string }
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Actor.Email != f.member.email {
			t.Errorf("line %d: got %s (%v), want JSON with the member as actor", i, line, err)
		}
	}
}

func TestExportCSV(t *testing.T) {
	t.Parallel()
	f := newListFixture(t)
	var buf bytes.Buffer
	if err := audit.Export(context.Background(), f.pool, plainKeys, f.ws, audit.Filter{Action: "RoleChanged"}, &buf, audit.FormatCSV); err != nil {
		t.Fatalf("Export: %v", err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("read CSV: %v", err)
	}
	wantHeader := []string{"seq", "eventId", "workspaceId", "occurredAt", "action", "actorId", "actorEmail", "actorSystem",
		"targetId", "targetEmail", "details", "correlationId", "causationId", "requestIp", "requestUserAgent", "position", "prevHash", "hash", "actorErased", "targetErased"}
	if len(records) == 0 || !reflect.DeepEqual(records[0], wantHeader) {
		t.Fatalf("header: got %q, want %q", records[:min(1, len(records))], wantHeader)
	}
	var want [][]string
	for _, e := range all(t, f.pool, f.ws) {
		if e.Action != "RoleChanged" {
			continue
		}
		ev := f.events[e.Seq-1]
		want = append(want, []string{
			itoa(e.Seq), ev.Metadata.EventID.String(), f.ws.String(), ev.Metadata.OccurredAt.Truncate(time.Microsecond).Format(time.RFC3339Nano),
			"RoleChanged", f.owner.id.String(), f.owner.email, "false", f.member.id.String(), f.member.email,
			`{"fromRole":"Editor","toRole":"` + ev.Event.(domain.RoleChanged).ToRole + `"}`, "", "", "", "",
			ev.Position.String(), e.PrevHash, e.Hash, "false", "false",
		})
	}
	if got := records[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("CSV records, oldest first:\n got %q\nwant %q", got, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// firstWrite records the first Write Export makes and then fails, like a
// client that went away.
type firstWrite struct {
	n     int
	first []byte
}

var errGone = errors.New("client went away")

func (w *firstWrite) Write(p []byte) (int, error) {
	w.n++
	if w.first == nil {
		w.first = append([]byte{}, p...)
		return len(p), nil
	}
	return 0, errGone
}

// TestExportStreams: a long history comes out in small writes as it is
// read, not once at the end, and a failing writer stops the export.
func TestExportStreams(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	const n = 20_000
	p := newPerson("p@example.test")
	for i := 0; i < n; i += 2000 {
		apply(t, pool, logins(h, ws, p, 2000))
	}
	for _, format := range []string{audit.FormatNDJSON, audit.FormatCSV} {
		var out countingWriter
		if err := audit.Export(context.Background(), pool, plainKeys, ws, audit.Filter{}, &out, format); err != nil {
			t.Fatalf("%s: Export: %v", format, err)
		}
		if want := n + map[string]int{audit.FormatNDJSON: 0, audit.FormatCSV: 1}[format]; out.lines != want {
			t.Errorf("%s: lines: got %d, want %d", format, out.lines, want)
		}
		if out.max > 64<<10 || out.writes < out.bytes/(64<<10) {
			t.Errorf("%s: got %d writes of up to %d bytes for %d bytes, want writes of at most 64 KiB", format, out.writes, out.max, out.bytes)
		}

		w := &firstWrite{}
		err := audit.Export(context.Background(), pool, plainKeys, ws, audit.Filter{}, w, format)
		if !errors.Is(err, errGone) {
			t.Errorf("%s: Export to a failing writer: got %v, want %v", format, err, errGone)
		}
		if w.n != 2 || len(w.first) == 0 || len(w.first) > 64<<10 {
			t.Errorf("%s: got %d writes, the first of %d bytes, want to stop at the second write, after a first of at most 64 KiB", format, w.n, len(w.first))
		}
	}
}

type countingWriter struct {
	writes, bytes, max, lines int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	w.bytes += len(p)
	w.max = max(w.max, len(p))
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// TestExportedChainChecksOut: the NDJSON export carries everything an
// auditor needs to recompute the chain on their own; this test does so
// from the documented encoding alone, without the package's code.
func TestExportedChainChecksOut(t *testing.T) {
	t.Parallel()
	pool, a, _, _ := appliedScenario(t)
	var buf bytes.Buffer
	if err := audit.Export(context.Background(), pool, plainKeys, a, audit.Filter{}, &buf, audit.FormatNDJSON); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	prev, n := "", 0
	for sc.Scan() {
		var e struct {
			Seq         int64     `json:"seq"`
			EventID     string    `json:"eventId"`
			WorkspaceID string    `json:"workspaceId"`
			OccurredAt  time.Time `json:"occurredAt"`
			Action      string    `json:"action"`
			Actor       struct {
				ID     *string `json:"id"`
				Email  *string `json:"email"`
				System bool    `json:"system"`
			} `json:"actor"`
			Target *struct {
				ID    *string `json:"id"`
				Email *string `json:"email"`
			} `json:"target"`
			Details       json.RawMessage `json:"details"`
			CorrelationID *string         `json:"correlationId"`
			CausationID   *string         `json:"causationId"`
			Request       *struct {
				IP        *string `json:"ip"`
				UserAgent *string `json:"userAgent"`
			} `json:"request"`
			Position string `json:"position"`
			PrevHash string `json:"prevHash"`
			Hash     string `json:"hash"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		n++
		if e.Seq != int64(n) || e.PrevHash != prev {
			t.Errorf("line %d: got seq %d prevHash %q, want seq %d prevHash %q", n, e.Seq, e.PrevHash, n, prev)
		}
		field := func(p *string) string {
			if p == nil {
				return "-\n"
			}
			return strconv.Itoa(len(*p)) + ":" + *p + "\n"
		}
		s := func(v string) *string { return &v }
		var targetID, targetEmail, ip, ua *string
		if e.Target != nil {
			targetID, targetEmail = e.Target.ID, e.Target.Email
		}
		if e.Request != nil {
			ip, ua = e.Request.IP, e.Request.UserAgent
		}
		commit, prepare, _ := strings.Cut(e.Position, "-")
		canonical := "usersd.audit.v1\n" + field(s(e.WorkspaceID)) + field(s(strconv.FormatInt(e.Seq, 10))) + field(s(e.EventID)) +
			field(s(e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000000Z"))) +
			field(e.Actor.ID) + field(e.Actor.Email) + field(s(strconv.FormatBool(e.Actor.System))) + field(s(e.Action)) +
			field(targetID) + field(targetEmail) + field(s(string(e.Details))) + field(e.CorrelationID) + field(e.CausationID) +
			field(ip) + field(ua) + field(s(commit)) + field(s(prepare))
		sum := sha256.Sum256([]byte(e.PrevHash + canonical))
		if want := hex.EncodeToString(sum[:]); e.Hash != want {
			t.Errorf("line %d: hash: got %s, want %s recomputed from the line", n, e.Hash, want)
		}
		prev = e.Hash
	}
	if n != 6 {
		t.Errorf("lines: got %d, want 6", n)
	}
}

// poolWriter runs a query on a pool at every Write: it succeeds only when a
// connection is free, which it is not while Export holds the pool's only one.
type poolWriter struct {
	pool   *pgxpool.Pool
	writes int
	bytes  bytes.Buffer
}

func (w *poolWriter) Write(p []byte) (int, error) {
	w.writes++
	// Generous: a free connection answers at once; a held one never does.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var one int
	if err := w.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return 0, fmt.Errorf("write %d: no free connection while Export writes: %w", w.writes, err)
	}
	return w.bytes.Write(p)
}

// TestExportHoldsNoConnectionWhileWriting: Export releases its database
// connection before each write, so a reader that stalls (an HTTP client
// that stops reading) holds no connection. On a pool of one connection,
// every write of the export runs a query of its own; it could not if
// Export kept its rows open while writing. Entries added meanwhile are
// left out: an export is the history as it was when it started.
func TestExportHoldsNoConnectionWhileWriting(t *testing.T) {
	t.Parallel()
	big, url := pgtest.New(t)
	var h history
	ws := uuid.New()
	p := newPerson("p@example.test")
	const n = 2*audit.ExportPage + 300 // three pages
	apply(t, big, logins(&h, ws, p, n))
	pool := projectionstest.Pool(t, url, 1)

	for _, format := range []string{audit.FormatNDJSON, audit.FormatCSV} {
		w := &poolWriter{pool: pool}
		added := false
		err := audit.Export(context.Background(), pool, plainKeys, ws, audit.Filter{}, writerFunc(func(b []byte) (int, error) {
			if !added { // while the export runs, more entries come
				added = true
				apply(t, big, logins(&h, ws, p, 10))
			}
			return w.Write(b)
		}), format)
		if err != nil {
			t.Fatalf("%s: Export: %v", format, err)
		}
		want := n + map[string]int{audit.FormatNDJSON: 0, audit.FormatCSV: 1}[format]
		if format == audit.FormatCSV {
			want += 10 // the NDJSON run's additions were there when it started
		}
		if got := bytes.Count(w.bytes.Bytes(), []byte{'\n'}); got != want {
			t.Errorf("%s: lines: got %d, want %d", format, got, want)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
