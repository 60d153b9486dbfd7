package httpapi_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/feed"
)

// feedLine is a line of the event feed, as a client reads it.
type feedLine struct {
	Position    string          `json:"position"`
	EventID     string          `json:"eventId"`
	Type        string          `json:"type"`
	WorkspaceID *string         `json:"workspaceId"`
	OccurredAt  *time.Time      `json:"occurredAt"`
	Data        json.RawMessage `json:"data"`
	Metadata    json.RawMessage `json:"metadata"`
}

func (l feedLine) heartbeat() bool { return l.Type == "heartbeat" }

func (l feedLine) pos(t testing.TB) domain.Position {
	t.Helper()
	p, err := domain.ParsePosition(l.Position)
	if err != nil {
		t.Fatalf("line at %q: %v", l.Position, err)
	}
	return p
}

func parseFeed(t testing.TB, body []byte) []feedLine {
	t.Helper()
	var out []feedLine
	for raw := range bytes.Lines(body) {
		var l feedLine
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("line %q: %v", raw, err)
		}
		out = append(out, l)
	}
	return out
}

func eventsToken(sub uuid.UUID) string {
	return signed(sub, jwt.MapClaims{"scope": "events:read"})
}

// readFeed reads a feed that ends (no follow) through the checking client.
func (a *api) readFeed(t testing.TB, tok, query string) []feedLine {
	t.Helper()
	r := a.must(t, http.StatusOK, req{method: "GET", path: "/v1/events" + query, token: tok})
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q, want application/x-ndjson", ct)
	}
	return parseFeed(t, r.body)
}

// openFeed opens a feed as a plain client (a followed feed has no end for
// the checking client to read to).
func (a *api) openFeed(ctx context.Context, t testing.TB, tok, query string, zip bool) *http.Response {
	t.Helper()
	hr, err := http.NewRequestWithContext(ctx, "GET", a.url+"/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+tok)
	if zip {
		hr.Header.Set("Accept-Encoding", "gzip")
	}
	res, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		t.Fatalf("GET /v1/events%s: %v", query, err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("GET /v1/events%s: %d %s", query, res.StatusCode, b)
	}
	return res
}

// feedReader reads a followed feed's lines, through gzip when it is
// compressed.
func feedReader(t testing.TB, res *http.Response) *bufio.Reader {
	t.Helper()
	if res.Header.Get("Content-Encoding") != "gzip" {
		return bufio.NewReader(res.Body)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return bufio.NewReader(zr)
}

func nextLine(t testing.TB, r *bufio.Reader) feedLine {
	t.Helper()
	raw, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read a line of the feed: %v (got %q)", err, raw)
	}
	var l feedLine
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatalf("line %q: %v", raw, err)
	}
	return l
}

// storedEvents reads the whole history from the store: what the feed must
// show.
func (a *api) storedEvents(t testing.TB) []eventstore.RecordedEvent {
	t.Helper()
	rows, err := a.pool.Query(context.Background(), `SELECT event_id, type, tx_id, position FROM events ORDER BY tx_id, position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []eventstore.RecordedEvent
	for rows.Next() {
		var e eventstore.RecordedEvent
		var c, p int64
		if err := rows.Scan(&e.ID, &e.Type, &c, &p); err != nil {
			t.Fatal(err)
		}
		e.Position = domain.Position{Commit: uint64(c), Prepare: uint64(p)}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEventFeed(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Feed", "admin@feed.test")
	other, _, adm2 := a.adminWorkspace(t, "Other", "admin@other.test")
	a.join(t, ws, adm, "jane@feed.test", "Editor")
	a.invite(t, other, adm2, "joe@other.test", "Monitor")

	stored := a.storedEvents(t)
	all := a.readFeed(t, systemToken, "")
	if len(all) != len(stored) {
		t.Fatalf("the feed has %d lines, the store %d events", len(all), len(stored))
	}
	for i, l := range all {
		if l.Position != stored[i].Position.String() || l.EventID != stored[i].ID.String() || l.Type != stored[i].Type {
			t.Errorf("line %d: %s %s %s, want %s %s %s", i, l.Position, l.EventID, l.Type, stored[i].Position, stored[i].ID, stored[i].Type)
		}
		if l.OccurredAt == nil || l.Data == nil || l.Metadata == nil {
			t.Errorf("line %d lacks a field: %+v", i, l)
		}
		if (l.WorkspaceID == nil) != (l.Type == "AccountRegistered") {
			t.Errorf("line %d: %s with workspaceId %v", i, l.Type, l.WorkspaceID)
		}
	}
	// Living people's values show opened.
	body := a.must(t, 200, req{method: "GET", path: "/v1/events", token: systemToken}).body
	for _, s := range []string{`"email":"jane@feed.test"`, `"name":"jane"`, `"email":"admin@feed.test"`} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("the feed does not show %s", s)
		}
	}

	// An events:read token reads the same.
	if got := a.readFeed(t, eventsToken(uuid.New()), ""); len(got) != len(all) {
		t.Errorf("events:read: %d lines, want %d", len(got), len(all))
	}

	// Filters.
	count := func(keep func(feedLine) bool) (n int) {
		for _, l := range all {
			if keep(l) {
				n++
			}
		}
		return n
	}
	cases := []struct {
		query string
		want  int
	}{
		{"?after=" + all[2].Position, len(all) - 3},
		{"?after=" + all[len(all)-1].Position, 0},
		{"?types=UserInvited", count(func(l feedLine) bool { return l.Type == "UserInvited" })},
		{"?types=UserInvited,InvitationAccepted&types=AccountRegistered", count(func(l feedLine) bool {
			return l.Type == "UserInvited" || l.Type == "InvitationAccepted" || l.Type == "AccountRegistered"
		})},
		{"?workspace=" + other.String(), count(func(l feedLine) bool { return l.WorkspaceID != nil && *l.WorkspaceID == other.String() })},
		{"?workspace=" + ws.String() + "&types=UserInvited", 1},
		{"?limit=4", 4},
		{"?limit=4&after=" + all[len(all)-2].Position, 1},
		{"?follow=false", len(all)},
		{"?follow=true&limit=3", 3},
	}
	for _, c := range cases {
		got := a.readFeed(t, eventsToken(uuid.New()), c.query)
		if len(got) != c.want {
			t.Errorf("%s: %d lines, want %d", c.query, len(got), c.want)
		}
		for _, l := range got {
			if l.heartbeat() {
				t.Errorf("%s: a heartbeat in a feed that ended: %+v", c.query, l)
			}
		}
	}
}

func TestEventFeedRefusesBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	a.createWorkspace(t, "Bad", "admin@bad.test")
	for query, field := range map[string]string{
		"?after=abc":                            "after",
		"?after=01-2":                           "after",
		"?after=1":                              "after",
		"?after=-1-2":                           "after",
		"?types=UserInvited,Nope":               "types",
		"?types=heartbeat":                      "types",
		"?workspace=nope":                       "workspace",
		"?workspace=" + strings.Repeat("a", 32): "workspace",
		"?limit=0":                              "limit",
		"?limit=1000001":                        "limit",
		"?limit=ten":                            "limit",
		"?follow=yes":                           "follow",
		"?follow=":                              "follow",
	} {
		r := a.do(t, req{method: "GET", path: "/v1/events" + query, token: systemToken})
		if r.status != http.StatusBadRequest || r.code() != "invalid_input" || !fieldNamed(r, field) {
			t.Errorf("%s: got %d %s, want 400 invalid_input naming %s", query, r.status, truncate(r.body), field)
		}
	}
	// A user, even an Admin, may not read it.
	_, owner, _ := a.createWorkspace(t, "Users", "admin@users.test")
	if r := a.do(t, req{method: "GET", path: "/v1/events", token: userToken(owner)}); r.status != http.StatusForbidden || r.code() != "not_allowed" {
		t.Errorf("a user's token: got %d %s, want 403 not_allowed", r.status, truncate(r.body))
	}
}

// TestEventFeedShowsNothingOfTheErased deletes an account whose person had
// acted, and reads the whole feed: none of their values remain.
func TestEventFeedShowsNothingOfTheErased(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Erased", "owner@erased.test")
	gone, _ := a.join(t, ws, adm, "gone.person@erased.test", "Admin")
	// As an Admin, the person acts: their address is in the metadata.
	_, pos := a.invite(t, ws, userToken(gone), "invited.by.gone@erased.test", "Editor")
	before := a.must(t, 200, req{method: "GET", path: "/v1/events", token: systemToken}).body
	if !bytes.Contains(before, []byte("gone.person@erased.test")) {
		t.Fatalf("the feed shows no value of the living person: %s", truncate(before))
	}
	a.must(t, 200, req{method: "DELETE", path: "/v1/accounts/" + gone.String(), token: systemToken, headers: consistent(pos)})

	body := a.must(t, 200, req{method: "GET", path: "/v1/events", token: systemToken}).body
	for _, s := range []string{"gone.person", `"name":"gone`} {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("the feed still shows %q of an erased person", s)
		}
	}
	sawData, sawActor := false, false
	for _, l := range parseFeed(t, body) {
		var data map[string]any
		if err := json.Unmarshal(l.Data, &data); err != nil {
			t.Fatal(err)
		}
		if data["userId"] == gone.String() {
			if v, ok := data["email"]; ok && v != nil {
				t.Errorf("%s: email %v, want null", l.Type, v)
			}
			sawData = sawData || l.Type == "InvitationAccepted"
		}
		var meta struct {
			Actor   map[string]any
			Request any
		}
		if err := json.Unmarshal(l.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Actor["userId"] == gone.String() {
			sawActor = true
			if meta.Actor["erased"] != true || meta.Actor["email"] != nil || meta.Request != nil {
				t.Errorf("%s: the erased actor shows as %v, request %v", l.Type, meta.Actor, meta.Request)
			}
		}
	}
	if !sawData || !sawActor {
		t.Errorf("the erased person is no longer in the feed (as subject: %v, as actor: %v)", sawData, sawActor)
	}
	// The others' values still show.
	if !bytes.Contains(body, []byte("invited.by.gone@erased.test")) {
		t.Error("the feed lost a living person's address")
	}
}

func TestEventFeedGzip(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) { c.FeedHeartbeat = 20 * time.Millisecond })
	a.createWorkspace(t, "Gzip", "admin@gzip.test")
	plain := a.must(t, 200, req{method: "GET", path: "/v1/events", token: systemToken}).body

	res := a.openFeed(context.Background(), t, systemToken, "", true)
	if res.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("headers %v, want Content-Encoding gzip and Vary Accept-Encoding", res.Header)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain) {
		t.Errorf("gzip feed differs from the plain one:\n%s\n%s", truncate(unzipped), truncate(plain))
	}

	// Followed, each batch and heartbeat is flushed through gzip: lines
	// come before the answer ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res = a.openFeed(ctx, t, systemToken, "?follow=true", true)
	defer res.Body.Close()
	r := feedReader(t, res)
	// A heartbeat may come between the history's batches on a slow
	// machine (20 ms here); every event comes, then heartbeats only.
	history := parseFeed(t, plain)
	for seen := 0; seen < len(history); {
		if l := nextLine(t, r); !l.heartbeat() {
			if l.Position != history[seen].Position {
				t.Fatalf("line %d at %s, want %s", seen, l.Position, history[seen].Position)
			}
			seen++
		}
	}
	if l := nextLine(t, r); !l.heartbeat() {
		t.Errorf("after the history, %+v, want a heartbeat", l)
	}

	for _, h := range []string{"identity", "gzip;q=0", "br", ""} {
		hr, _ := http.NewRequest("GET", a.url+"/v1/events?limit=1", nil)
		hr.Header.Set("Authorization", "Bearer "+systemToken)
		hr.Header.Set("Accept-Encoding", h)
		res, err := http.DefaultTransport.RoundTrip(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Content-Encoding") != "" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want none", h, res.Header.Get("Content-Encoding"))
		}
	}
}

// TestEventFeedFollows: a followed feed shows the history, heartbeats at
// the position reached while nothing happens, and new events as they are
// stored.
func TestEventFeedFollows(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) { c.FeedHeartbeat = 20 * time.Millisecond })
	ws, _, adm := a.adminWorkspace(t, "Follow", "admin@follow.test")
	history := a.readFeed(t, systemToken, "")
	end := history[len(history)-1].Position

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Filtered by type: a heartbeat tells how far the feed read even
	// though it wrote nothing.
	res := a.openFeed(ctx, t, eventsToken(uuid.New()), "?follow=true&types=UserInvited", false)
	defer res.Body.Close()
	r := feedReader(t, res)
	// Heartbeats while the feed reads the history (20 ms apart, so a slow
	// machine shows some on the way) never pass its end, then stay there.
	for at := 0; at < 3; {
		l := nextLine(t, r)
		if !l.heartbeat() || mustPosition(t, end).Less(l.pos(t)) {
			t.Fatalf("line %+v, want a heartbeat at %s at the most", l, end)
		}
		if l.Position == end {
			at++
		}
	}
	_, pos := a.invite(t, ws, adm, "new@follow.test", "Editor")
	for {
		l := nextLine(t, r)
		if l.heartbeat() {
			continue
		}
		if l.Type != "UserInvited" || l.Position != pos {
			t.Fatalf("line %+v, want the invitation at %s", l, pos)
		}
		break
	}
	if l := nextLine(t, r); !l.heartbeat() || l.pos(t).Less(mustPosition(t, pos)) {
		t.Errorf("after the invitation, %+v, want a heartbeat at %s or later", l, pos)
	}
}

func mustPosition(t testing.TB, s string) domain.Position {
	t.Helper()
	p, err := domain.ParsePosition(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEventFeedResumes is the feed's promise: a client that disconnects at
// random points and resumes from the last position it read gets every
// event exactly once, in order, while writers run.
func TestEventFeedResumes(t *testing.T) {
	t.Parallel()
	testFeedResumes(t)
}

func testFeedResumes(t *testing.T) {
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.FeedHeartbeat = 30 * time.Millisecond
		c.Streams.PerCaller = 4
	})
	ws, _, adm := a.adminWorkspace(t, "Resume", "admin@resume.test")

	// Writers: invitations and role changes in one workspace, through the
	// API, while the reader comes and goes.
	const writers, rounds = 3, 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last domain.Position
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				email := fmt.Sprintf("w%d-%d@resume.test", w, i)
				r := a.do(t, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/invitations", token: adm,
					body: map[string]any{"emails": email, "role": "Editor"}})
				var out struct {
					Results  []inviteResult
					Position string
				}
				if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Results) != 1 || out.Results[0].UserID == nil {
					t.Errorf("invite %s: %d %s", email, r.status, truncate(r.body))
					return
				}
				r = a.do(t, req{method: "PUT", path: "/v1/workspaces/" + ws.String() + "/users/" + out.Results[0].UserID.String() + "/role",
					token: adm, body: map[string]string{"role": "Monitor"}})
				var p struct{ Position string }
				if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
					t.Errorf("change the role of %s: %d %s", email, r.status, truncate(r.body))
					return
				}
				pos, err := domain.ParsePosition(p.Position)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if last.Less(pos) {
					last = pos
				}
				mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	tok := eventsToken(uuid.New())
	var got []feedLine
	after := domain.Position{}
	connections := 0
	for finished := false; ; {
		if !finished {
			select {
			case <-done:
				finished = true
			default:
			}
		}
		if finished {
			mu.Lock()
			reached := !after.Less(last)
			mu.Unlock()
			if reached || t.Failed() {
				break
			}
		}
		connections++
		query := "?follow=true"
		if !after.IsZero() {
			query += "&after=" + after.String()
		}
		ctx, cancel := context.WithCancel(context.Background())
		res := a.openFeed(ctx, t, tok, query, rng.IntN(3) == 0)
		r := feedReader(t, res)
		// Read some lines, then perhaps part of one more, and leave.
		for range rng.IntN(25) {
			l := nextLine(t, r)
			p := l.pos(t)
			if p.Less(after) || (!l.heartbeat() && p == after) {
				t.Fatalf("connection %d after %s: line at %s goes back", connections, after, p)
			}
			after = p
			if !l.heartbeat() {
				got = append(got, l)
			}
		}
		if rng.IntN(2) == 0 {
			_, _ = r.Read(make([]byte, 1+rng.IntN(100)))
		}
		cancel()
		res.Body.Close()
	}
	if t.Failed() {
		return
	}

	var want []string
	for _, l := range a.readFeed(t, systemToken, "") {
		if !after.Less(l.pos(t)) {
			want = append(want, l.EventID)
		}
	}
	ids := make([]string, len(got))
	for i, l := range got {
		ids[i] = l.EventID
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("over %d connections the client read %d events; want the %d of the history up to %s, each once, in order", connections, len(ids), len(want), after)
	}
	t.Logf("%d events read over %d connections", len(ids), connections)
	if connections < 5 {
		t.Errorf("only %d connections: the test did not disconnect much", connections)
	}
}

// stallingListener hands out connections whose writes block after the
// first limit bytes until the server closes them: a client that stopped
// reading.
type stallingListener struct {
	net.Listener
	limit   int
	stalled chan struct{} // one signal per connection that stalls
}

func (l *stallingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, l: l, closed: make(chan struct{})}, nil
}

type stallingConn struct {
	net.Conn
	l         *stallingListener
	n         int // written; only the server's writer touches it
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *stallingConn) Write(b []byte) (int, error) {
	if c.n+len(b) > c.l.limit {
		if c.n <= c.l.limit {
			c.n = c.l.limit + 1 // signalled
			c.l.stalled <- struct{}{}
		}
		<-c.closed
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Write(b)
	c.n += n
	return n, err
}

func (c *stallingConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestEventFeedHoldsNoConnectionForASlowClient stalls more feeds than the
// pool has connections, each in the middle of a history larger than a
// batch, and reads through the same pool meanwhile.
func TestEventFeedHoldsNoConnectionForASlowClient(t *testing.T) {
	t.Parallel()
	const feeds = 6
	var small *pgxpool.Pool
	a := newAPIWithApp(t, func(_ *commands.Deps, p *commands.InvitationPolicy) {
		p.Limits = domain.InviteLimits{PerWorkspace: math.MaxInt32, PerInviter: math.MaxInt32}
	}, func(c *httpapi.Config) {
		cfg := c.DB.(*pgxpool.Pool).Config()
		cfg.MaxConns, cfg.MinConns = 2, 0
		var err error
		if small, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(small.Close)
		store := pgstore.New(small)
		t.Cleanup(store.Close)
		c.DB, c.Events = small, eventstore.Source{Store: store, Codec: testCodec}
		c.Streams = httpapi.StreamLimits{PerReplica: feeds, PerCaller: feeds, WriteTimeout: time.Minute}
	})
	ws, _, adm := a.adminWorkspace(t, "Slow", "admin@slow.test")
	var emails []string
	for i := range 1200 {
		emails = append(emails, fmt.Sprintf("slow%04d@slow.test", i))
	}
	for chunk := range slices.Chunk(emails, 400) {
		a.invite(t, ws, adm, chunk, "Editor")
	}
	if n := a.eventCount(t); n < 2*feed.DefaultBatchSize {
		t.Fatalf("%d events, want more than two of the feed's batches", n)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &stallingListener{Listener: l, limit: 64 << 10, stalled: make(chan struct{}, feeds)}
	srv := httptest.NewUnstartedServer(a.handler)
	srv.Listener = sl
	srv.Start()
	defer srv.Close()
	// Close waits for the handlers, which wait for their stalled writes.
	defer srv.CloseClientConnections()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range feeds {
		hr, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/events", nil)
		hr.Header.Set("Authorization", "Bearer "+systemToken)
		go func() {
			if res, err := (&http.Transport{}).RoundTrip(hr); err == nil {
				<-ctx.Done()
				res.Body.Close()
			}
		}()
	}
	for i := range feeds {
		select {
		case <-sl.stalled:
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d feeds got as far as writing (stat: %d of %d connections acquired)", i, feeds, small.Stat().AcquiredConns(), small.Stat().MaxConns())
		}
	}
	// Every feed is stuck writing to its client. Reads through the same
	// two connections still answer.
	for range 5 {
		rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
		hr, _ := http.NewRequestWithContext(rctx, "GET", a.url+"/v1/workspaces/"+ws.String()+"/users?limit=1", nil)
		hr.Header.Set("Authorization", "Bearer "+adm)
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			rcancel()
			t.Fatalf("a read while %d feeds stall: %v (stat: %d of %d connections acquired)", feeds, err, small.Stat().AcquiredConns(), small.Stat().MaxConns())
		}
		res.Body.Close()
		rcancel()
		if res.StatusCode != 200 {
			t.Fatalf("a read while %d feeds stall: %d", feeds, res.StatusCode)
		}
	}
}

// TestEventFeedEndsOnShutdown: a server that shuts down ends its followed
// feeds at once, each with a last heartbeat, instead of waiting for them.
func TestEventFeedEndsOnShutdown(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) { c.FeedHeartbeat = time.Hour })
	a.createWorkspace(t, "Stop", "admin@stop.test")
	history := a.readFeed(t, systemToken, "")

	api := a.handler.(*httpapi.Server)
	srv := httptest.NewUnstartedServer(api)
	srv.Config.RegisterOnShutdown(api.EndFeeds)
	srv.Start()
	defer srv.Close()
	hr, _ := http.NewRequest("GET", srv.URL+"/v1/events?follow=true", nil)
	hr.Header.Set("Authorization", "Bearer "+systemToken)
	res, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := bufio.NewReader(res.Body)
	for range history {
		nextLine(t, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a followed feed held it)", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the feed did not end cleanly: %v", err)
	}
	lines := parseFeed(t, rest)
	if len(lines) != 1 || !lines[0].heartbeat() || lines[0].Position != history[len(history)-1].Position {
		t.Errorf("after the history: %s, want one last heartbeat at %s", rest, history[len(history)-1].Position)
	}
}

// TestEventFeedResumesOnESDB is TestEventFeedResumes with the events in
// the EventStoreDB adapter over its in-process test server, as with
// ESDB_URL set.
func TestEventFeedResumesOnESDB(t *testing.T) {
	t.Parallel()
	onESDB(t, testFeedResumes)
}
