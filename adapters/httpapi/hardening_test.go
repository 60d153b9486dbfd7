package httpapi_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
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
