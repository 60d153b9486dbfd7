package httpapi_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// The request id becomes the correlation id of the events a request
// causes, shown in the audit history: only a trusted proxy's is taken, and
// only when short and plain; any other client gets an id of ours.
func TestRequestIDComesFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []netip.Prefix
		sent    string
		kept    bool
	}{
		{"a client's own", nil, "chosen-by-the-client", false},
		{"a trusted proxy's", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "from-the-proxy.1:2_3", true},
		{"a trusted proxy's, too long", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, strings.Repeat("x", 129), false},
		{"a trusted proxy's, with spaces", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "bad id", false},
		{"a trusted proxy's, with a line break", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "a\u2028b", false},
		{"a proxy trusted elsewhere", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "from-someone", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := newAPIWith(t, func(cfg *httpapi.Config) { cfg.TrustedProxies = c.trusted })
			r := a.must(t, http.StatusCreated, req{method: "POST", path: "/v1/workspaces", token: systemToken,
				body:    map[string]any{"name": "Ids", "owner": map[string]string{"email": "owner@ids.test", "name": "Owner"}},
				headers: map[string]string{"X-Request-Id": c.sent}})
			got := r.header.Get("X-Request-Id")
			if (got == c.sent) != c.kept || got == "" {
				t.Errorf("sent X-Request-Id %q, answered %q; want it kept: %v", c.sent, got, c.kept)
			}
			var out struct {
				WorkspaceID, OwnerUserID uuid.UUID
				Position                 string
			}
			r.json(t, &out)
			var page struct {
				Items []struct{ CorrelationID *string }
			}
			a.must(t, http.StatusOK, req{method: "GET", path: "/v1/workspaces/" + out.WorkspaceID.String() + "/audit", token: userToken(out.OwnerUserID),
				headers: consistent(out.Position)}).json(t, &page)
			if len(page.Items) == 0 {
				t.Fatal("no audit entry")
			}
			for _, e := range page.Items {
				if e.CorrelationID == nil || *e.CorrelationID != got {
					t.Errorf("audit entry's correlation id %v, want the answered request id %q", e.CorrelationID, got)
				}
			}
		})
	}
}

// Every answer carries X-Content-Type-Options: nosniff, whatever route,
// status or content type: successes, problems, unmatched routes and
// methods, the operations endpoints.
func TestEveryAnswerIsNosniff(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, owner, _ := a.createWorkspace(t, "Sniff", "owner@sniff.test")
	for _, rq := range []req{
		{method: "GET", path: "/healthz"},
		{method: "HEAD", path: "/healthz"},
		{method: "GET", path: "/readyz"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/openapi.yaml"},
		{method: "GET", path: "/v1/nothing"},
		{method: "GET", path: "/elsewhere"},
		{method: "PATCH", path: "/v1/workspaces"},
		{method: "GET", path: "/v1/me/workspaces"},
		{method: "GET", path: "/v1/me/workspaces", token: userToken(owner)},
		{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users", token: userToken(owner)},
		{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit", token: userToken(owner), headers: map[string]string{"Accept": "text/csv"}},
		{method: "POST", path: "/v1/workspaces", token: systemToken, body: "{", contentType: "application/json"},
		{method: "POST", path: "/v1/workspaces/" + ws.String() + "/logins", token: userToken(owner)},
	} {
		r := a.do(t, rq)
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", rq.method, rq.path, r.status, got)
		}
	}
}

// gate holds one armed request at a point of its work until its client
// has left, then lets it go on with its dead context: a client that
// cancels while its request waits or queries.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
}

func (g *gate) hold(ctx context.Context) {
	if !g.armed.CompareAndSwap(true, false) {
		return
	}
	g.entered <- struct{}{}
	<-ctx.Done()
}

// gatedWaiter is the real waiter, with the gate before each wait; the
// wait itself outlives the client, so that the request goes on to its
// queries with a dead context.
type gatedWaiter struct {
	httpapi.Waiter
	g *gate
}

func (w gatedWaiter) WaitFor(ctx context.Context, pos domain.Position, names ...string) error {
	w.g.hold(ctx)
	return w.Waiter.WaitFor(context.WithoutCancel(ctx), pos, names...)
}

// gatedWorkspaces is the real repository, with the gate before each update.
type gatedWorkspaces struct {
	commands.WorkspaceRepository
	g *gate
}

func (w gatedWorkspaces) Update(ctx context.Context, id uuid.UUID, decide func(*domain.Workspace) error, stamp commands.Stamp) (domain.Position, error) {
	w.g.hold(ctx)
	return w.WorkspaceRepository.Update(ctx, id, decide, stamp)
}

// A request its client cancels is neither a 500 nor an error in the log:
// the observer (the metrics) hears status 499 with outcome "cancelled".
func TestClientCancelledRequestsAreNoErrors(t *testing.T) {
	t.Parallel()
	g := &gate{entered: make(chan struct{})}
	obs := &observations{}
	a := newAPIWithApp(t, func(d *commands.Deps, _ *commands.InvitationPolicy) {
		d.Workspaces = gatedWorkspaces{d.Workspaces, g}
	}, func(c *httpapi.Config) {
		c.Observer = obs
		c.Waiter = gatedWaiter{c.Waiter, g}
	})
	ws, owner, pos := a.createWorkspace(t, "Cancelled", "owner@cancelled.test")
	base := a.url + "/v1/workspaces/" + ws.String()
	for _, c := range []struct {
		name, method, path, route, body string
		headers                         map[string]string
	}{
		{"the user list", "GET", base + "/users", "/v1/workspaces/{ws}/users", "", map[string]string{"X-Consistent-With": pos}},
		{"audit verify", "GET", base + "/audit/verify", "/v1/workspaces/{ws}/audit/verify", "", map[string]string{"X-Consistent-With": pos}},
		{"a role change", "PUT", base + "/users/" + owner.String() + "/role", "/v1/workspaces/{ws}/users/{userId}/role", `{"role":"Manager"}`, nil},
		{"an invitation", "POST", base + "/invitations", "/v1/workspaces/{ws}/invitations", `{"emails":"new@cancelled.test","role":"Editor"}`, nil},
	} {
		g.armed.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		hr, err := http.NewRequestWithContext(ctx, c.method, c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Authorization", "Bearer "+userToken(owner))
		if c.body != "" {
			hr.Header.Set("Content-Type", "application/json")
		}
		for k, v := range c.headers {
			hr.Header.Set(k, v)
		}
		done := make(chan error, 1)
		go func() {
			res, err := http.DefaultClient.Do(hr)
			if err == nil {
				res.Body.Close()
			}
			done <- err
		}()
		select {
		case <-g.entered:
		case err := <-done:
			t.Fatalf("%s: answered before it reached the gate: %v", c.name, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: never reached the gate", c.name)
		}
		cancel()
		if err := <-done; err == nil {
			t.Fatalf("%s: the cancelled request got an answer", c.name)
		}
		var got []observation
		for deadline := time.Now().Add(30 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			got = obs.of(c.method, c.route)
		}
		if want := (observation{c.method, c.route, 499, "cancelled"}); len(got) != 1 || got[0] != want {
			t.Errorf("%s: the observer heard %+v, want %+v", c.name, got, want)
		}
	}
	if logs := a.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("cancelled requests logged errors:\n%s", logs)
	}
}

// of is what the observer heard of method on route.
func (o *observations) of(method, route string) []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observation
	for _, got := range o.all {
		if got.method == method && got.route == route {
			out = append(out, got)
		}
	}
	return out
}
