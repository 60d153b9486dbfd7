package httpapi_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/domain"
)

// Denial of service: stalled exports, forged tokens, slow bodies and too
// many connections must not take the replica from everyone else.

// patience bounds a wait that succeeds at once when the code is right and
// never when it is wrong: generous, for a loaded machine.
const patience = 60 * time.Second

// fatEntries is the size of fatHistory's histories: with 2,000-byte user
// agents, about 30 MB of export, far more than the kernel buffers of a
// connection hold, so an export to a client that reads nothing blocks in
// its writes.
const fatEntries = 15_000

// fatHistory adds fatEntries audit entries to ws directly in the table,
// after the ones the projection wrote. The test must write nothing more to
// ws afterwards (the projection would number its entries the same).
func fatHistory(t *testing.T, pool *pgxpool.Pool, ws uuid.UUID) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO audit_entries (workspace_id, seq, event_id, occurred_at, actor_id, actor_email, actor_system, action,
			target_id, target_email, details, correlation_id, causation_id, request_ip, request_user_agent,
			commit_position, prepare_position, prev_hash, hash)
		SELECT $1, m.last + g, gen_random_uuid(), now(), NULL, NULL, true, 'UserLoggedIn',
			NULL, NULL, '{}'::jsonb, NULL, NULL, '192.0.2.1', repeat('x', 2000), 0, 0, '', ''
		FROM generate_series(1, $2::int) g, (SELECT coalesce(max(seq), 0) AS last FROM audit_entries WHERE workspace_id = $1) m`,
		ws, fatEntries)
	if err != nil {
		t.Fatalf("fat history: %v", err)
	}
}

// exportWorkspace is a workspace with a fat history, its Admin and a
// Monitor.
func exportWorkspace(t *testing.T, a *api) (ws uuid.UUID, admin, monitor string) {
	t.Helper()
	ws, owner, _ := a.createWorkspace(t, "Exports", "owner@example.com")
	admin = userToken(owner)
	mon, pos := a.join(t, ws, admin, "monitor@example.com", "Monitor")
	a.must(t, http.StatusOK, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit", token: admin, headers: consistent(pos)})
	fatHistory(t, a.pool, ws)
	return ws, admin, userToken(mon)
}

// rawClient does not read answers for the test, unlike the helpers'
// client, which reads and checks each one whole.
func rawClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// openExport starts an export and answers it with its body unread; it
// fails the test if the headers do not come.
func openExport(t *testing.T, c *http.Client, base string, ws uuid.UUID, token, accept string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(patience, cancel)
	defer timer.Stop()
	r, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/workspaces/"+ws.String()+"/audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Accept", accept)
	res, err := c.Do(r)
	if err != nil {
		t.Fatalf("export (%s): no answer: %v", accept, err)
	}
	t.Cleanup(func() { res.Body.Close(); cancel() })
	return res
}

// answer is a request's status and problem code, read whole within
// patience.
func answer(t *testing.T, c *http.Client, method, url, token string, body string, headers map[string]string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	res, err := c.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return res.StatusCode, resp{body: raw}.code(), res.Header
}

// TestStalledExportsLeaveTheDatabaseToOthers: more exports than the API's
// pool has connections, none of them read, and every other request still
// works: an export holds no connection while it waits on its client.
func TestStalledExportsLeaveTheDatabaseToOthers(t *testing.T) {
	t.Parallel()
	const conns = 4
	var small *pgxpool.Pool
	a := newAPIWith(t, func(c *httpapi.Config) {
		cfg, err := pgxpool.ParseConfig(c.DB.(*pgxpool.Pool).Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = conns
		if small, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(small.Close)
		c.DB = small
		c.Ready = func(ctx context.Context) error { return small.Ping(ctx) }
		// Slots enough for every export here: this test is about
		// connections, not the caps.
		c.Streams = httpapi.StreamLimits{PerReplica: 32, PerCaller: 32, WriteTimeout: 10 * time.Minute}
	})
	ws, admin, monitor := exportWorkspace(t, a)
	c := rawClient(t)
	for i := range conns + 2 {
		tok, accept := admin, "application/x-ndjson"
		if i%2 == 1 {
			tok, accept = monitor, "text/csv"
		}
		if res := openExport(t, c, a.url, ws, tok, accept); res.StatusCode != http.StatusOK {
			t.Fatalf("export %d: got %d, want 200", i+1, res.StatusCode)
		}
	}

	// Everything else still answers, in this workspace and others.
	check := func(what string, want int, method, path, token, body string, headers map[string]string) {
		t.Helper()
		if got, code, _ := answer(t, c, method, a.url+path, token, body, headers); got != want {
			t.Errorf("%s with %d exports stalled: got %d %s, want %d", what, conns+2, got, code, want)
		}
	}
	check("readyz", 200, "GET", "/readyz", "", "", nil)
	check("user list", 200, "GET", "/v1/workspaces/"+ws.String()+"/users", admin, "", nil)
	check("audit page", 200, "GET", "/v1/workspaces/"+ws.String()+"/audit?limit=5", monitor, "", nil)
	other, owner, pos := a.createWorkspace(t, "Other", "other@example.com")
	check("another workspace's list", 200, "GET", "/v1/workspaces/"+other.String()+"/users", userToken(owner), "", consistent(pos))
}

// TestExportSlots: at most PerCaller exports per caller and PerReplica in
// all run at once; beyond that 429 too_many_requests with Retry-After, and
// a slot is free again once its export ends.
func TestExportSlots(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.Streams = httpapi.StreamLimits{PerReplica: 3, PerCaller: 2, WriteTimeout: 10 * time.Minute}
	})
	ws, admin, monitor := exportWorkspace(t, a)
	c := rawClient(t)
	first := openExport(t, c, a.url, ws, admin, "application/x-ndjson")
	if res := openExport(t, c, a.url, ws, admin, "text/csv"); res.StatusCode != 200 {
		t.Fatalf("the Admin's second export: got %d, want 200", res.StatusCode)
	}
	refused := func(who, token string) {
		t.Helper()
		// Through the helpers' client: the answer must be documented.
		r := a.do(t, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit", token: token, headers: map[string]string{"Accept": "text/csv"}})
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusTooManyRequests || r.code() != "too_many_requests" || err != nil || retry < 1 {
			t.Errorf("%s: got %d %s, Retry-After %q; want 429 too_many_requests with Retry-After", who, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	refused("the Admin's third export (2 per caller)", admin)
	if res := openExport(t, c, a.url, ws, monitor, "application/x-ndjson"); res.StatusCode != 200 {
		t.Fatalf("the Monitor's first export: got %d, want 200", res.StatusCode)
	}
	refused("the Monitor's second export (3 per replica)", monitor)
	a.must(t, http.StatusOK, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit?limit=1", token: monitor})
	// A verify scans the whole chain on one connection: it needs a slot
	// too, and there is none.
	if r := a.do(t, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit/verify", token: monitor}); r.status != http.StatusTooManyRequests || r.code() != "too_many_requests" || r.header.Get("Retry-After") == "" {
		t.Errorf("a verify while every slot is taken: got %d %s, want 429 too_many_requests with Retry-After", r.status, r.body)
	}

	// The Admin gives up an export: its slot is free once the server
	// notices.
	first.Body.Close()
	waitForExport(t, c, a.url, ws, monitor)
}

// waitForExport opens exports until one is accepted.
func waitForExport(t *testing.T, c *http.Client, base string, ws uuid.UUID, token string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		res := openExport(t, c, base, ws, token, "application/x-ndjson")
		if res.StatusCode == http.StatusOK {
			return
		}
		res.Body.Close()
		if res.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("export: got %d, want 200 once a slot is free", res.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStalledExportIsCutOff: an export whose client takes nothing for the
// write timeout is cut (the client sees a truncated transfer, not a short
// file that looks complete), and its slot is free again.
func TestStalledExportIsCutOff(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.Streams = httpapi.StreamLimits{PerCaller: 1, WriteTimeout: time.Second}
	})
	ws, admin, _ := exportWorkspace(t, a)
	c := rawClient(t)
	stalled := openExport(t, c, a.url, ws, admin, "application/x-ndjson")
	waitForExport(t, c, a.url, ws, admin)
	n, err := io.Copy(io.Discard, stalled.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the stalled export: got %d bytes and %v, want an unexpected EOF (a cut transfer)", n, err)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "stopped reading") || strings.Contains(logs, "failed midway") {
		t.Errorf("logs: want the export logged as ended by its client, not as failed:\n%s", logs)
	}
}

// TestExportOutlivesServerTimeouts: on a server with short read and write
// timeouts (which bound ordinary requests), an export to a slow but
// reading client runs to its end, and the connection then serves other
// requests.
func TestExportOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, admin, _ := exportWorkspace(t, a)
	base := serveOwn(t, a.handler, httpapi.Timeouts{ReadHeader: 2 * time.Second, Read: 2 * time.Second, Write: 2 * time.Second})
	c := rawClient(t)
	res := openExport(t, c, base, ws, admin, "application/x-ndjson")
	br := bufio.NewReader(res.Body)
	lines := 0
	for {
		_, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("export cut after %d lines: %v", lines, err)
		}
		lines++
		if lines%5000 == 0 { // a slow reader: past every server timeout
			time.Sleep(2500 * time.Millisecond)
		}
	}
	if lines < fatEntries {
		t.Errorf("export: got %d lines, want at least %d", lines, fatEntries)
	}
	if got, code, _ := answer(t, c, "GET", base+"/v1/workspaces/"+ws.String()+"/users", admin, "", nil); got != 200 {
		t.Errorf("a request after the export: got %d %s, want 200", got, code)
	}
}

// serveOwn serves h on a real http.Server of NewHTTPServer with timeouts
// t, behind LimitConnsPerClient with limit c, and answers its base URL.
func serveOwn(t *testing.T, h http.Handler, tm httpapi.Timeouts, limit ...httpapi.ConnLimit) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewHTTPServer(h, tm)
	var ln net.Listener = l
	if len(limit) > 0 {
		ln = httpapi.LimitConnsPerClient(l, limit[0])
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

func randomToken() string {
	secret := make([]byte, domain.SecretSize)
	_, _ = rand.Read(secret)
	return domain.InvitationToken{WorkspaceID: uuid.New(), InvitationID: uuid.New(), Secret: secret}.String()
}

// TestTokenEndpointsRateLimitedPerClient: invitation lookups and
// acceptances, which need no login, are limited per client address (the
// forwarded one behind a trusted proxy; an IPv6 /64 as one): beyond the
// burst 429 too_many_requests with Retry-After, while other addresses go
// on.
func TestTokenEndpointsRateLimitedPerClient(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.TokenRate = httpapi.RateLimit{Burst: 3, Every: time.Hour}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	call := func(from, path string) resp {
		t.Helper()
		body := map[string]string{"token": randomToken()}
		if strings.HasSuffix(path, "accept") {
			body["name"] = "Mallory"
		}
		return a.do(t, req{method: "POST", path: path, body: body, headers: map[string]string{"X-Forwarded-For": from}})
	}
	allowed := func(from, path string) {
		t.Helper()
		if r := call(from, path); r.status != http.StatusBadRequest || r.code() != "invalid_token" {
			t.Errorf("%s from %s: got %d %s, want 400 invalid_token", path, from, r.status, r.body)
		}
	}
	limited := func(from, path string) {
		t.Helper()
		r := call(from, path)
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusTooManyRequests || r.code() != "too_many_requests" || err != nil || retry < 1 {
			t.Errorf("%s from %s: got %d %s, Retry-After %q; want 429 too_many_requests with Retry-After", path, from, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	const lookup, accept = "/v1/invitations/lookup", "/v1/invitations/accept"
	allowed("203.0.113.7", lookup)
	allowed("203.0.113.7", accept)
	allowed("203.0.113.7", lookup)
	limited("203.0.113.7", lookup)
	limited("203.0.113.7", accept)
	allowed("203.0.113.8", accept)

	for i := range 3 {
		allowed(fmt.Sprintf("2001:db8:1:2::%d", i+1), lookup)
	}
	limited("2001:db8:1:2:ffff::99", lookup) // the same /64
	allowed("2001:db8:1:3::1", lookup)
}

// TestSlowBodyIsCutOff: a client that sends its body a byte at a time is
// answered 408 request_timeout and disconnected at the server's read
// timeout, instead of holding the connection as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	base := serveOwn(t, a.handler, httpapi.Timeouts{ReadHeader: 2 * time.Second, Read: 2 * time.Second})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /v1/invitations/accept HTTP/1.1\r\nHost: usersd\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() { // a byte now and then, for ever
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(patience))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a body sent byte by byte: %v", err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || (resp{body: raw}).code() != "request_timeout" {
		t.Errorf("got %d %s, want 408 request_timeout", res.StatusCode, raw)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Errorf("the connection stays open after the answer, want it closed")
	}
}

// TestConnectionsPerClientCapped: beyond its limit, a client address's
// connections are closed as soon as accepted (and counted); a closed
// connection frees its place; trusted proxies are not counted.
func TestConnectionsPerClientCapped(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	var refused atomic.Int64
	base := serveOwn(t, ok, httpapi.Timeouts{}, httpapi.ConnLimit{PerClient: 2, Refused: func() { refused.Add(1) }})
	addr := strings.TrimPrefix(base, "http://")

	// roundTrip sends a request on conn and answers whether it was served.
	roundTrip := func(conn net.Conn) bool {
		_ = conn.SetDeadline(time.Now().Add(patience))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: usersd\r\n\r\n"); err != nil {
			return false
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	c1, c2 := dial(), dial()
	if !roundTrip(c1) || !roundTrip(c2) {
		t.Fatal("the first two connections are not served")
	}
	if roundTrip(dial()) {
		t.Error("a third connection from the same address was served, want it closed")
	}
	if got := refused.Load(); got != 1 {
		t.Errorf("refused connections counted: got %d, want 1", got)
	}
	c1.Close()
	deadline := time.Now().Add(patience)
	for !roundTrip(dial()) { // until the server has seen c1 go
		if time.Now().After(deadline) {
			t.Fatal("no connection is served after one of two closed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	proxied := serveOwn(t, ok, httpapi.Timeouts{}, httpapi.ConnLimit{PerClient: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for i := range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(proxied, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if !roundTrip(conn) {
			t.Errorf("connection %d from a trusted proxy not served, want proxies exempt", i+1)
		}
	}
}
