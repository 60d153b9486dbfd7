package httpapi_test

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	a := newAPIWithApp(t, func(_ *commands.Deps, p *commands.InvitationPolicy) {
		p.Limits = domain.InviteLimits{PerWorkspace: 2, PerInviter: 2}
	}, nil)
	ws, _, adm := a.adminWorkspace(t, "Limited", "admin@limited.test")
	a.invite(t, ws, adm, "a@limited.test, b@limited.test", "Editor")
	// A refused batch records nothing in the workspace (nor reserves
	// accounts: commands.InviteUsers checks the batch before it does).
	before := a.workspaceEventCount(t)
	r := a.do(t, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/invitations", token: adm,
		body: map[string]any{"emails": "c@limited.test", "role": "Editor"}})
	if r.status != http.StatusTooManyRequests || r.code() != "rate_limited" {
		t.Fatalf("third invitation: %d %s, want 429 rate_limited", r.status, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || secs > 24*3600 {
		t.Errorf("Retry-After %q, want seconds within a day", r.header.Get("Retry-After"))
	}
	if after := a.workspaceEventCount(t); after != before {
		t.Errorf("%d events written by a refused batch", after-before)
	}
}

type panickingLinks struct{}

func (panickingLinks) Deliver(context.Context, []httpapi.InvitationLink) { panic("mailer exploded") }

func TestPanicsAnswer500AndTheServerGoesOn(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) { c.Links = panickingLinks{} })
	ws, owner, _ := a.createWorkspace(t, "Panics", "admin@panics.test")
	r := a.do(t, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/invitations", token: userToken(owner),
		body: map[string]any{"emails": "x@panics.test", "role": "Editor"}})
	if r.status != 500 || r.code() != "internal" || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panicking handler: %d %s %v", r.status, r.body, r.header)
	}
	a.must(t, 200, req{method: "GET", path: "/healthz"})
}

func TestClientAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"X-Forwarded-For ignored by default", nil, "127.0.0.1"},
		{"X-Forwarded-For believed from a trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAPIWith(t, func(c *httpapi.Config) { c.TrustedProxies = tc.trusted })
			ws, _, adm := a.adminWorkspace(t, "Proxies", "admin@proxies.test")
			var p struct{ Position string }
			a.must(t, 200, req{method: "PUT", path: "/v1/workspaces/" + ws.String() + "/settings", token: adm,
				body:    map[string]bool{"managersMayGrantAdmin": false},
				headers: map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}}).json(t, &p)
			var page struct {
				Items []struct {
					Request *struct{ IP string }
				}
			}
			a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit?action=WorkspaceSettingsChanged", token: adm,
				headers: consistent(p.Position)}).json(t, &page)
			if len(page.Items) != 1 || page.Items[0].Request == nil || page.Items[0].Request.IP != tc.want {
				t.Fatalf("audit entries %+v, want one from %s", page.Items, tc.want)
			}
		})
	}
}
