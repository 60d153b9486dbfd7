package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
)

// TestAuthorizationMatrix asks each main endpoint as every kind of caller
// and checks the status each gets.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	a, ws, owner, adm := newAdminWorkspace(t, "Matrix", "admin@matrix.test")
	ids := map[string]uuid.UUID{"Admin": owner}
	var pos string
	for _, role := range []string{"Manager", "Editor", "Monitor", "AgentUser"} {
		ids[role], pos = a.join(t, ws, adm, strings.ToLower(role)+"@matrix.test", role)
	}
	ids["suspended"], _ = a.join(t, ws, adm, "suspended@matrix.test", "Editor")
	var p struct{ Position string }
	a.must(t, 200, req{method: "POST", path: fmt.Sprintf("/v1/workspaces/%s/users/%s/suspend", ws, ids["suspended"]), token: adm}).json(t, &p)
	pos = p.Position
	// Every read model has caught up before the matrix runs.
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit/verify", token: adm, headers: consistent(pos)})
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users", token: adm, headers: consistent(pos)})
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users/" + ids["Editor"].String() + "/history", token: adm, headers: consistent(pos)})

	badSig, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": owner.String(), "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("another-secret-another-secret-another-secret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": owner.String(), "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": owner.String()}).SignedString(testSecret)
	notUUID, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(testSecret)
	callers := []struct{ name, token string }{
		{"Admin", adm},
		{"Manager", userToken(ids["Manager"])},
		{"Editor", userToken(ids["Editor"])},
		{"Monitor", userToken(ids["Monitor"])},
		{"AgentUser", userToken(ids["AgentUser"])},
		{"suspended", userToken(ids["suspended"])},
		{"stranger", userToken(uuid.New())},
		{"system", systemToken},
		{"no token", ""},
		{"bad signature", badSig},
		{"expired", token(owner, false, time.Now().Add(-time.Hour))},
		{"alg none", none},
		{"no exp", noExp},
		{"sub not a UUID", notUUID},
	}
	base := "/v1/workspaces/" + ws.String()
	editor := ids["Editor"].String()
	n := 0
	endpoints := []struct {
		name string
		req  func(caller string) req
		want map[string]int // by caller; the unauthenticated ones are 401 everywhere
	}{
		{"list users", func(string) req { return req{method: "GET", path: base + "/users"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"dormant users", func(string) req {
			return req{method: "GET", path: base + "/users?inactiveSince=2030-01-01T00:00:00Z&sort=-lastLoginAt"}
		},
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"get user", func(string) req { return req{method: "GET", path: base + "/users/" + editor} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"permissions of the Editor", func(string) req { return req{method: "GET", path: base + "/users/" + editor + "/permissions"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"history of the Editor", func(string) req { return req{method: "GET", path: base + "/users/" + editor + "/history"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"list users as of an instant", func(string) req { return req{method: "GET", path: base + "/users?asOf=2099-01-01T00:00:00Z"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"audit", func(string) req { return req{method: "GET", path: base + "/audit"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"audit verify", func(string) req { return req{method: "GET", path: base + "/audit/verify"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"invite", func(caller string) req {
			n++
			return req{method: "POST", path: base + "/invitations", body: map[string]any{"emails": fmt.Sprintf("new%d@matrix.test", n), "role": "AgentUser"}}
		}, map[string]int{"Admin": 200, "Manager": 200, "Editor": 403, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"change role (to the same)", func(string) req {
			return req{method: "PUT", path: base + "/users/" + editor + "/role", body: map[string]string{"role": "Editor"}}
		}, map[string]int{"Admin": 200, "Manager": 403, "Editor": 403, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"reactivate (an active member)", func(string) req { return req{method: "POST", path: base + "/users/" + editor + "/reactivate"} },
			map[string]int{"Admin": 200, "Manager": 403, "Editor": 403, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"settings (unchanged)", func(string) req {
			return req{method: "PUT", path: base + "/settings", body: map[string]bool{"managersMayGrantAdmin": true}}
		}, map[string]int{"Admin": 200, "Manager": 403, "Editor": 403, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"own login", func(string) req { return req{method: "POST", path: base + "/logins"} },
			map[string]int{"Admin": 204, "Manager": 204, "Editor": 204, "Monitor": 204, "AgentUser": 204, "suspended": 403, "stranger": 404, "system": 400}},
		{"login of the Editor", func(string) req {
			return req{method: "POST", path: base + "/logins", body: map[string]string{"userId": editor}}
		}, map[string]int{"Admin": 403, "Manager": 403, "Editor": 204, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 403, "system": 204}},
		{"my workspaces", func(string) req { return req{method: "GET", path: "/v1/me/workspaces"} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 200, "suspended": 200, "stranger": 200, "system": 403}},
		{"create workspace", func(caller string) req {
			return req{method: "POST", path: "/v1/workspaces", body: map[string]any{"name": "New " + caller, "owner": map[string]string{"email": "o@new.test", "name": "O"}}}
		}, map[string]int{"Admin": 403, "Manager": 403, "Editor": 403, "Monitor": 403, "AgentUser": 403, "suspended": 403, "stranger": 403, "system": 201}},
	}
	for _, ep := range endpoints {
		for _, c := range callers {
			want, ok := ep.want[c.name]
			if !ok {
				want = http.StatusUnauthorized
			}
			rq := ep.req(c.name)
			rq.token = c.token
			r := a.do(t, rq)
			if r.status != want {
				t.Errorf("%s as %s: got %d %s, want %d", ep.name, c.name, r.status, r.body, want)
			}
			if want == http.StatusUnauthorized && (r.code() != "unauthenticated" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer")) {
				t.Errorf("%s as %s: 401 without the problem or WWW-Authenticate: %v %s", ep.name, c.name, r.header, r.body)
			}
		}
	}
}

// The callers of the authorisation matrix: one column each.
const (
	cAdmin = iota
	cManager
	cEditor
	cMonitor
	cAgentUser
	cStranger  // a valid user token, no membership
	cInvitee   // invited as Admin, not accepted yet
	cSuspended // an Admin, suspended
	cSystem    // "scope": "system"
	cEvents    // "scope": "events:read" with the Admin's sub: may read the event feed and nothing else
	cUnknown   // a scope usersd does not know, with the Admin's sub
	cNone      // no Authorization header
	cBadSig    // the Admin's claims signed with another secret
	nCallers
)

var callerNames = [nCallers]string{
	"Admin", "Manager", "Editor", "Monitor", "AgentUser", "non-member", "pending invitee (Admin)",
	"suspended Admin", "system", "events:read", "unknown scope", "no token", "bad signature",
}

// cells are a row's expected statuses, one per caller, in the order of the
// constants above.
type cells [nCallers]int

// matrix is what the rows need: the workspace and its people.
type matrix struct {
	a              *api
	ws             uuid.UUID
	admin          string // the Admin's token, to set up targets
	editor, target uuid.UUID
	pendingTarget  uuid.UUID // a pending invitation that resends target
	webhook        uuid.UUID // a webhook whose log the rows read
	lookupToken    string    // an invitation token that lookups read
	self           [nCallers]uuid.UUID
	tokens         [nCallers]string
	pos            string // the position every read waits for
	n              atomic.Int64
	forwardedFor   [nCallers]string
	reviews        sync.Once
	openReview     uuid.UUID // an open access review, the Editor undecided
	doneReview     uuid.UUID // a completed one
	reviewPos      string    // the position its reads wait for
}

// setUpReviews starts the matrix's two access reviews, once.
func (m *matrix) setUpReviews(t *testing.T) {
	m.reviews.Do(func() {
		m.openReview, _ = m.a.startReview(t, m.ws, m.admin, "Open")
		var pos string
		m.doneReview, pos = m.a.startReview(t, m.ws, m.admin, "Done")
		m.reviewPos = m.a.completeReview(t, m.ws, m.doneReview, m.admin, pos)
	})
}

// reviewReq is a request on the matrix's reviews ({open}, {done}).
func reviewReq(method, path string, body any) func(*testing.T, *matrix, int) req {
	return func(t *testing.T, m *matrix, _ int) req {
		m.setUpReviews(t)
		p := strings.NewReplacer("{ws}", m.ws.String(), "{open}", m.openReview.String(), "{done}", m.doneReview.String(),
			"{editor}", m.editor.String()).Replace(path)
		return req{method: method, path: p, body: body, headers: consistent(m.reviewPos)}
	}
}

func (m *matrix) fresh(kind string) string {
	return fmt.Sprintf("%s-%d@matrix2.test", kind, m.n.Add(1))
}

// freshMember is a new active Editor, for a row that removes one.
func (m *matrix) freshMember(t *testing.T) uuid.UUID {
	id, _ := m.a.join(t, m.ws, m.admin, m.fresh("member"), "Editor")
	return id
}

// freshWebhook is a new webhook, for a row that removes one.
func (m *matrix) freshWebhook(t *testing.T) string {
	var res struct{ WebhookID string }
	m.a.must(t, 201, req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/webhooks", token: m.admin,
		body: map[string]any{"url": "https://203.0.113.10/" + m.fresh("hook"), "events": []string{"*"}}}).json(t, &res)
	return res.WebhookID
}

// freshInvitation is a new pending invitation: its user id and its token.
func (m *matrix) freshInvitation(t *testing.T) (uuid.UUID, string) {
	email := m.fresh("invitee")
	res, _ := m.a.invite(t, m.ws, m.admin, email, "Editor")
	if len(res) != 1 || res[0].UserID == nil || res[0].Outcome != "invited" {
		t.Fatalf("invite %s: %+v", email, res)
	}
	return *res[0].UserID, m.a.links.latest(t, email)
}

// matrixRow is one case of one route.
type matrixRow struct {
	method, path string // the route as the router names it
	what         string
	req          func(t *testing.T, m *matrix, caller int) req
	want         cells
}

// The statuses of the rows that recur: a route anyone may use; a read for
// members from Monitor up; a change for Managers and Admins; a change only
// an Admin may make.
var (
	managers  = cells{200, 200, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}
	anyone    = cells{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200}
	readers   = cells{200, 200, 200, 200, 403, 404, 404, 403, 403, 403, 401, 401, 401}
	adminOnly = cells{200, 403, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}
)

// rows are the expected statuses, written from shared/spec/api.md and
// docs/decisions.md: 401 for a missing or bad token (and a scope usersd
// does not know), 403 when authenticated but not allowed (the platform and
// an events:read token on a member's endpoint, a suspended member), 404 for
// a workspace the caller is not a member of (pending invitations are not
// memberships). Every route of the router needs at least one row.
var matrixRows = []matrixRow{
	// Columns: Admin, Manager, Editor, Monitor, AgentUser, non-member, pending invitee, suspended Admin,
	// system, events:read, unknown scope, no token, bad signature.
	{"GET", "/healthz", "", plain("GET", "/healthz"), anyone},
	{"HEAD", "/healthz", "", plain("HEAD", "/healthz"), anyone},
	{"GET", "/readyz", "", plain("GET", "/readyz"), anyone},
	{"HEAD", "/readyz", "", plain("HEAD", "/readyz"), anyone},
	{"GET", "/openapi.yaml", "", plain("GET", "/openapi.yaml"), anyone},
	{"HEAD", "/openapi.yaml", "", plain("HEAD", "/openapi.yaml"), anyone},
	{"GET", "/metrics", "", plain("GET", "/metrics"), anyone},

	{"POST", "/v1/invitations/lookup", "a live token", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/invitations/lookup", body: map[string]string{"token": m.lookupToken}}
	}, anyone},
	{"POST", "/v1/invitations/accept", "a fresh invitation", func(t *testing.T, m *matrix, _ int) req {
		_, tok := m.freshInvitation(t)
		return req{method: "POST", path: "/v1/invitations/accept", body: map[string]string{"token": tok, "name": "New Person"}}
	}, anyone},

	{"POST", "/v1/workspaces", "", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/workspaces", body: map[string]any{"name": "Matrix " + m.fresh("ws"), "owner": map[string]string{"email": m.fresh("owner"), "name": "Owner"}}}
	}, cells{403, 403, 403, 403, 403, 403, 403, 403, 201, 403, 401, 401, 401}},
	{"GET", "/v1/me/workspaces", "", read("/v1/me/workspaces"),
		cells{200, 200, 200, 200, 200, 200, 200, 200, 403, 403, 401, 401, 401}},
	{"GET", "/v1/dev/mailbox", "", read("/v1/dev/mailbox"),
		cells{200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 401, 401, 401}},
	{"DELETE", "/v1/accounts/{userId}", "a fresh member's account", func(t *testing.T, m *matrix, _ int) req {
		email := m.fresh("deleted")
		id, pos := m.a.join(t, m.ws, m.admin, email, "Editor")
		return req{method: "DELETE", path: "/v1/accounts/" + id.String(), headers: consistent(pos)}
	}, cells{403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401, 401, 401}},
	{"GET", "/v1/accounts/{userId}/export", "the Editor's", read("/v1/accounts/{editor}/export"),
		cells{403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401, 401, 401}},
	{"GET", "/v1/accounts/lookup", "a member's address", func(t *testing.T, m *matrix, _ int) req {
		email := m.fresh("looked-up")
		_, pos := m.a.join(t, m.ws, m.admin, email, "Editor")
		return req{method: "GET", path: "/v1/accounts/lookup?email=" + email, headers: consistent(pos)}
	}, cells{403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 401, 401, 401}},

	{"POST", "/v1/workspaces/{ws}/invitations", "", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/invitations", body: map[string]any{"emails": m.fresh("new"), "role": "AgentUser"}}
	}, managers},
	{"GET", "/v1/workspaces/{ws}/users", "", read("/v1/workspaces/{ws}/users"), readers},
	{"GET", "/v1/workspaces/{ws}/users/{userId}", "the Editor", read("/v1/workspaces/{ws}/users/{editor}"), readers},
	{"PUT", "/v1/workspaces/{ws}/users/{userId}/role", "the Editor's, unchanged", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "PUT", path: m.expand("/v1/workspaces/{ws}/users/{editor}/role", 0), body: map[string]string{"role": "Editor"}}
	}, adminOnly},
	{"DELETE", "/v1/workspaces/{ws}/users/{userId}", "a member", func(t *testing.T, m *matrix, _ int) req {
		return req{method: "DELETE", path: "/v1/workspaces/" + m.ws.String() + "/users/" + m.freshMember(t).String()}
	}, adminOnly},
	{"DELETE", "/v1/workspaces/{ws}/users/{userId}", "a pending invitation", func(t *testing.T, m *matrix, _ int) req {
		id, _ := m.freshInvitation(t)
		return req{method: "DELETE", path: "/v1/workspaces/" + m.ws.String() + "/users/" + id.String()}
	}, managers},
	{"POST", "/v1/workspaces/{ws}/users/{userId}/suspend", "an active member", post("/v1/workspaces/{ws}/users/{target}/suspend"), adminOnly},
	{"POST", "/v1/workspaces/{ws}/users/{userId}/reactivate", "a member", post("/v1/workspaces/{ws}/users/{target}/reactivate"), adminOnly},
	{"POST", "/v1/workspaces/{ws}/users/{userId}/invitation/resend", "a pending invitation", post("/v1/workspaces/{ws}/users/{pending}/invitation/resend"),
		cells{202, 202, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}},
	{"GET", "/v1/workspaces/{ws}/users/{userId}/permissions", "the Editor's", read("/v1/workspaces/{ws}/users/{editor}/permissions"), readers},
	{"GET", "/v1/workspaces/{ws}/users/{userId}/history", "the Editor's", read("/v1/workspaces/{ws}/users/{editor}/history"), readers},
	{"GET", "/v1/workspaces/{ws}/users", "as of a position", func(_ *testing.T, m *matrix, caller int) req {
		return req{method: "GET", path: m.expand("/v1/workspaces/{ws}/users?asOf=", caller) + m.pos, headers: consistent(m.pos)}
	}, readers},
	{"GET", "/v1/workspaces/{ws}/users/{userId}/permissions", "the caller's own", read("/v1/workspaces/{ws}/users/{self}/permissions"),
		cells{200, 200, 200, 200, 200, 404, 404, 200, 403, 403, 401, 401, 401}},
	{"POST", "/v1/workspaces/{ws}/logins", "the caller's own", post("/v1/workspaces/{ws}/logins"),
		cells{204, 204, 204, 204, 204, 404, 404, 403, 400, 403, 401, 401, 401}},
	{"POST", "/v1/workspaces/{ws}/logins", "the Editor's", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/logins", body: map[string]string{"userId": m.editor.String()}}
	}, cells{403, 403, 204, 403, 403, 403, 403, 403, 204, 403, 401, 401, 401}},
	{"GET", "/v1/workspaces/{ws}/audit", "", read("/v1/workspaces/{ws}/audit"), readers},
	{"GET", "/v1/workspaces/{ws}/audit/verify", "", read("/v1/workspaces/{ws}/audit/verify"), readers},
	{"GET", "/v1/workspaces/{ws}/audit/head", "", read("/v1/workspaces/{ws}/audit/head"), readers},
	{"GET", "/v1/events", "to the end", plain("GET", "/v1/events?limit=5"),
		cells{403, 403, 403, 403, 403, 403, 403, 403, 200, 200, 401, 401, 401}},
	{"GET", "/v1/audit/keys", "public keys: a token, even a bad one, is not read", read("/v1/audit/keys"), anyone},
	{"POST", "/v1/workspaces/{ws}/access-reviews", "", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/access-reviews", body: map[string]string{"name": "Matrix"}}
	}, cells{201, 403, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}},
	{"GET", "/v1/workspaces/{ws}/access-reviews", "", reviewReq("GET", "/v1/workspaces/{ws}/access-reviews", nil), readers},
	{"GET", "/v1/workspaces/{ws}/access-reviews/{id}", "a completed review", reviewReq("GET", "/v1/workspaces/{ws}/access-reviews/{done}", nil), readers},
	{"PUT", "/v1/workspaces/{ws}/access-reviews/{id}/items/{userId}", "keep the Editor",
		reviewReq("PUT", "/v1/workspaces/{ws}/access-reviews/{open}/items/{editor}", map[string]string{"decision": "keep"}), adminOnly},
	{"POST", "/v1/workspaces/{ws}/access-reviews/{id}/complete", "a completed review",
		reviewReq("POST", "/v1/workspaces/{ws}/access-reviews/{done}/complete", nil), cells{409, 403, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}},
	{"GET", "/v1/workspaces/{ws}/access-reviews/{id}/evidence", "a completed review", reviewReq("GET", "/v1/workspaces/{ws}/access-reviews/{done}/evidence", nil), readers},
	{"PUT", "/v1/workspaces/{ws}/settings", "unchanged", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "PUT", path: "/v1/workspaces/" + m.ws.String() + "/settings", body: map[string]bool{"managersMayGrantAdmin": true}}
	}, adminOnly},
	{"POST", "/v1/workspaces/{ws}/webhooks", "", func(_ *testing.T, m *matrix, _ int) req {
		return req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/webhooks",
			body: map[string]any{"url": "https://203.0.113.10/" + m.fresh("hook"), "events": []string{"UserInvited"}}}
	}, cells{201, 403, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}},
	{"GET", "/v1/workspaces/{ws}/webhooks", "", read("/v1/workspaces/{ws}/webhooks"), adminOnly},
	{"DELETE", "/v1/workspaces/{ws}/webhooks/{webhookId}", "a webhook", func(t *testing.T, m *matrix, _ int) req {
		return req{method: "DELETE", path: "/v1/workspaces/" + m.ws.String() + "/webhooks/" + m.freshWebhook(t)}
	}, adminOnly},
	{"GET", "/v1/workspaces/{ws}/webhooks/{webhookId}/deliveries", "", read("/v1/workspaces/{ws}/webhooks/{webhook}/deliveries"), adminOnly},
	{"POST", "/v1/workspaces/{ws}/webhooks/{webhookId}/replay", "from the start", post("/v1/workspaces/{ws}/webhooks/{webhook}/replay"),
		cells{202, 403, 403, 403, 403, 404, 404, 403, 403, 403, 401, 401, 401}},
}

func plain(method, path string) func(*testing.T, *matrix, int) req {
	return func(*testing.T, *matrix, int) req { return req{method: method, path: path} }
}

// read is a GET that waits until the read models hold the set-up.
func read(path string) func(*testing.T, *matrix, int) req {
	return func(_ *testing.T, m *matrix, caller int) req {
		return req{method: "GET", path: m.expand(path, caller), headers: consistent(m.pos)}
	}
}

func post(path string) func(*testing.T, *matrix, int) req {
	return func(_ *testing.T, m *matrix, caller int) req {
		return req{method: "POST", path: m.expand(path, caller)}
	}
}

func (m *matrix) expand(path string, caller int) string {
	return strings.NewReplacer("{ws}", m.ws.String(), "{editor}", m.editor.String(), "{target}", m.target.String(),
		"{pending}", m.pendingTarget.String(), "{self}", m.self[caller].String(), "{webhook}", m.webhook.String()).Replace(path)
}

// TestAuthorizationMatrixEveryRoute asks every route as every kind of
// caller and checks the exact status; a route of the router without a row
// fails the test.
func TestAuthorizationMatrixEveryRoute(t *testing.T) {
	t.Parallel()
	withWebhookDispatcher(t)
	var cfg httpapi.Config
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.Mailbox = &sliceMailbox{}
		// Each caller comes from an address of its own, so that a limit
		// per client address cannot decide a cell.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		cfg = *c
	})

	server, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, r := range httpapi.Routes(server) {
		if !slices.ContainsFunc(matrixRows, func(row matrixRow) bool { return row.method == r.Method && row.path == r.Path }) {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routes without a row in the authorisation matrix (add one to matrixRows, with the status each caller must get):\n  %s",
			strings.Join(missing, "\n  "))
	}

	m := &matrix{a: a}
	var owner uuid.UUID
	m.ws, owner, _ = a.createWorkspace(t, "Matrix", "admin@matrix2.test")
	m.admin = userToken(owner)
	m.self[cAdmin] = owner
	for c, role := range map[int]string{cManager: "Manager", cEditor: "Editor", cMonitor: "Monitor", cAgentUser: "AgentUser", cSuspended: "Admin"} {
		m.self[c], _ = a.join(t, m.ws, m.admin, strings.ToLower(callerNames[c][:3])+fmt.Sprint(c)+"@matrix2.test", role)
	}
	m.editor = m.self[cEditor]
	m.target, _ = a.join(t, m.ws, m.admin, "target@matrix2.test", "Editor")
	res, _ := a.invite(t, m.ws, m.admin, []string{"pending@matrix2.test", "lookup@matrix2.test", "invitee@matrix2.test"}, "Admin")
	for _, r := range res {
		switch r.Email {
		case "pending@matrix2.test":
			m.pendingTarget = *r.UserID
		case "invitee@matrix2.test":
			m.self[cInvitee] = *r.UserID
		}
	}
	m.lookupToken = a.links.latest(t, "lookup@matrix2.test")
	m.webhook = uuid.MustParse(m.freshWebhook(t))
	var p struct{ Position string }
	a.must(t, 200, req{method: "POST", path: "/v1/workspaces/" + m.ws.String() + "/users/" + m.self[cSuspended].String() + "/suspend", token: m.admin}).json(t, &p)
	m.pos = p.Position
	m.self[cStranger] = uuid.New()
	m.self[cSystem] = uuid.New()
	m.self[cEvents], m.self[cUnknown], m.self[cBadSig] = owner, owner, owner

	for c := range nCallers {
		m.tokens[c] = userToken(m.self[c])
		m.forwardedFor[c] = fmt.Sprintf("192.0.2.%d", c+1)
	}
	m.tokens[cSystem] = token(m.self[cSystem], true, time.Now().Add(time.Hour))
	m.tokens[cEvents] = signed(owner, jwt.MapClaims{"scope": "events:read"})
	m.tokens[cUnknown] = signed(owner, jwt.MapClaims{"scope": "admin"})
	m.tokens[cNone] = ""
	m.tokens[cBadSig], _ = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": owner.String(), "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte("another-secret-another-secret-another-secret"))

	for _, row := range matrixRows {
		name := row.method + " " + row.path
		if row.what != "" {
			name += " (" + row.what + ")"
		}
		for c := range nCallers {
			rq := row.req(t, m, c)
			rq.token = m.tokens[c]
			if rq.headers == nil {
				rq.headers = map[string]string{}
			}
			rq.headers["X-Forwarded-For"] = m.forwardedFor[c]
			r := a.do(t, rq)
			if want := row.want[c]; r.status != want {
				t.Errorf("%s as %s: got %d %s, want %d", name, callerNames[c], r.status, truncate(r.body), want)
			} else if want == http.StatusUnauthorized && (r.code() != "unauthenticated" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer")) {
				t.Errorf("%s as %s: 401 without the problem or WWW-Authenticate: %v %s", name, callerNames[c], r.header, r.body)
			}
		}
	}
}

// TestTokenScopes: the scope claim is a space-separated list; "system"
// makes the platform, "events:read" alone a reader of the event feed that
// is no user, and any value usersd does not know refuses the token.
func TestTokenScopes(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	_, owner, _ := a.createWorkspace(t, "Scopes", "admin@scopes.test")
	n := 0
	for _, c := range []struct {
		name               string
		scope              any // nil: no scope claim
		create, mine, feed int // POST /v1/workspaces, GET /v1/me/workspaces, GET /v1/events
	}{
		{"none", nil, 403, 200, 403},
		{"empty", "", 403, 200, 403},
		{"system", "system", 201, 403, 200},
		{"system among others", "events:read system", 201, 403, 200},
		{"events:read", "events:read", 403, 403, 200},
		{"events:read twice", " events:read  events:read ", 403, 403, 200},
		{"unknown", "admin", 401, 401, 401},
		{"system and unknown", "system admin", 401, 401, 401},
		{"events:read and unknown", "events:read admin", 401, 401, 401},
		{"letter case", "SYSTEM", 401, 401, 401},
		{"an array", []string{"system"}, 401, 401, 401},
	} {
		claims := jwt.MapClaims{}
		if c.scope != nil {
			claims["scope"] = c.scope
		}
		tok := signed(owner, claims)
		n++
		r := a.do(t, req{method: "POST", path: "/v1/workspaces", token: tok,
			body: map[string]any{"name": fmt.Sprintf("S%d", n), "owner": map[string]string{"email": fmt.Sprintf("o%d@scopes.test", n), "name": "O"}}})
		if r.status != c.create {
			t.Errorf("scope %s: POST /v1/workspaces got %d %s, want %d", c.name, r.status, truncate(r.body), c.create)
		}
		if r := a.do(t, req{method: "GET", path: "/v1/me/workspaces", token: tok}); r.status != c.mine {
			t.Errorf("scope %s: GET /v1/me/workspaces got %d %s, want %d", c.name, r.status, truncate(r.body), c.mine)
		}
		if r := a.do(t, req{method: "GET", path: "/v1/events?limit=1", token: tok}); r.status != c.feed {
			t.Errorf("scope %s: GET /v1/events got %d %s, want %d", c.name, r.status, truncate(r.body), c.feed)
		}
	}
}
