package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// TestAuthorizationMatrix asks each main endpoint as every kind of caller
// and checks the status each gets.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, owner, adm := a.adminWorkspace(t, "Matrix", "admin@matrix.test")
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
		{"get user", func(string) req { return req{method: "GET", path: base + "/users/" + editor} },
			map[string]int{"Admin": 200, "Manager": 200, "Editor": 200, "Monitor": 200, "AgentUser": 403, "suspended": 403, "stranger": 404, "system": 403}},
		{"permissions of the Editor", func(string) req { return req{method: "GET", path: base + "/users/" + editor + "/permissions"} },
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
