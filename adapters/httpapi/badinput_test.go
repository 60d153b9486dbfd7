package httpapi_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
)

// TestBadInput sends every write endpoint broken requests: each answers its
// status and code, and nothing is written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, _, adm := a.adminWorkspace(t, "Bad input", "admin@bad.test")
	member, _ := a.join(t, ws, adm, "member@bad.test", "Editor")
	invited := "pending@bad.test"
	pendingToken := a.pending(t, ws, adm, invited, "Editor")
	base := "/v1/workspaces/" + ws.String()
	user := base + "/users/" + member.String()

	endpoints := []struct {
		name, method, path, token string
		valid                     string // a valid body, to be broken
		role                      bool   // the body has a role
		ids                       []string
	}{
		{"create workspace", "POST", "/v1/workspaces", systemToken, `{"name":"W","owner":{"email":"o@w.test","name":"O"}}`, false, nil},
		{"invite", "POST", base + "/invitations", adm, `{"emails":["x@bad.test"],"role":"Editor"}`, true, []string{"/v1/workspaces/not-a-uuid/invitations"}},
		{"change role", "PUT", user + "/role", adm, `{"role":"Monitor"}`, true,
			[]string{base + "/users/123/role", "/v1/workspaces/xyz/users/" + member.String() + "/role"}},
		{"remove", "DELETE", user, adm, `{}`, false, []string{base + "/users/" + strings.ToUpper(member.String()[:8])}},
		{"suspend", "POST", user + "/suspend", adm, `{}`, false, []string{base + "/users/nope/suspend"}},
		{"reactivate", "POST", user + "/reactivate", adm, `{}`, false, []string{base + "/users/nope/reactivate"}},
		{"resend", "POST", base + "/users/" + uuid.NewString() + "/invitation/resend", adm, `{}`, false, []string{base + "/users/nope/invitation/resend"}},
		{"settings", "PUT", base + "/settings", adm, `{"managersMayGrantAdmin":false}`, false, []string{"/v1/workspaces/nope/settings"}},
		{"login", "POST", base + "/logins", userToken(member), `{"userId":"` + member.String() + `"}`, false, []string{"/v1/workspaces/nope/logins"}},
		{"lookup", "POST", "/v1/invitations/lookup", "", `{"token":"` + pendingToken + `"}`, false, nil},
		{"accept", "POST", "/v1/invitations/accept", "", `{"token":"` + pendingToken + `","name":"P"}`, false, nil},
	}
	type broken struct {
		name, path, body, contentType string
		status                        int
		code                          string
	}
	big := `{"name":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`
	for _, ep := range endpoints {
		cases := []broken{
			{"bad JSON", ep.path, `{"role":`, "application/json", 400, "invalid_json"},
			{"not an object", ep.path, `["a"]`, "application/json", 400, "invalid_json"},
			{"trailing data", ep.path, ep.valid + ` {}`, "application/json", 400, "invalid_json"},
			{"unknown field", ep.path, strings.Replace(ep.valid, "{", `{"surprise":1,`, 1), "application/json", 400, "invalid_json"},
			{"wrong content type", ep.path, ep.valid, "text/plain", 415, "unsupported_media_type"},
			{"no content type", ep.path, ep.valid, "", 415, "unsupported_media_type"},
			{"1 MiB + 1", ep.path, big[:httpapi.MaxBodyBytes+1], "application/json", 413, "body_too_large"},
		}
		if ep.valid == `{}` {
			cases[3].body = `{"surprise":1}`
		}
		if ep.role {
			cases = append(cases, broken{"invalid role", ep.path, strings.Replace(ep.valid, `"role":"`, `"role":"Overlord`, 1), "application/json", 400, "invalid_role"},
				broken{"role of the wrong type", ep.path, strings.Replace(ep.valid, `"role":"`, `"role":5,"x":"`, 1), "application/json", 400, "invalid_json"})
		}
		for _, p := range ep.ids {
			cases = append(cases, broken{"invalid UUID in " + p, p, ep.valid, "application/json", 400, "invalid_input"})
		}
		for _, c := range cases {
			before := a.eventCount(t)
			r := a.do(t, req{method: ep.method, path: c.path, token: ep.token, body: []byte(c.body), contentType: c.contentType})
			if r.status != c.status || r.code() != c.code {
				t.Errorf("%s, %s: got %d %s, want %d %s", ep.name, c.name, r.status, truncate(r.body), c.status, c.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s, %s: content type %q", ep.name, c.name, ct)
			}
			if after := a.eventCount(t); after != before {
				t.Errorf("%s, %s: %d events were written", ep.name, c.name, after-before)
			}
		}
	}

	// Values the decoders accept but the commands refuse; still nothing
	// written, and the problem names the field.
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
	}{
		{"owner e-mail", "POST", "/v1/workspaces", systemToken, `{"name":"W","owner":{"email":"nope","name":"O"}}`, 400, "invalid_email", "owner.email"},
		{"owner missing", "POST", "/v1/workspaces", systemToken, `{"name":"W"}`, 400, "invalid_input", "owner"},
		{"workspace name", "POST", "/v1/workspaces", systemToken, `{"name":" ","owner":{"email":"o@w.test","name":"O"}}`, 400, "invalid_name", "name"},
		{"empty batch", "POST", base + "/invitations", adm, `{"emails":" , ","role":"Editor"}`, 400, "empty_batch", "emails"},
		{"emails of the wrong type", "POST", base + "/invitations", adm, `{"emails":[1],"role":"Editor"}`, 400, "invalid_json", "emails"},
		{"role missing", "POST", base + "/invitations", adm, `{"emails":"a@b.test"}`, 400, "invalid_input", "role"},
		{"too many addresses", "POST", base + "/invitations", adm, fmt.Sprintf(`{"emails":%q,"role":"Editor"}`, manyAddresses(501)), 400, "batch_too_large", "emails"},
		{"setting missing", "PUT", base + "/settings", adm, `{}`, 400, "invalid_input", "managersMayGrantAdmin"},
		{"setting of the wrong type", "PUT", base + "/settings", adm, `{"managersMayGrantAdmin":"no"}`, 400, "invalid_json", "managersMayGrantAdmin"},
		{"login user id", "POST", base + "/logins", systemToken, `{"userId":"bob"}`, 400, "invalid_input", "userId"},
		{"token missing", "POST", "/v1/invitations/accept", "", `{"name":"P"}`, 400, "invalid_input", "token"},
		{"malformed token", "POST", "/v1/invitations/lookup", "", `{"token":"abc"}`, 400, "invalid_token", "token"},
		{"accept without a name", "POST", "/v1/invitations/accept", "", `{"token":"` + pendingToken + `","name":""}`, 400, "invalid_name", "name"},
		{"empty body", "PUT", user + "/role", adm, ``, 400, "invalid_json", ""},
	} {
		before := a.eventCount(t)
		r := a.do(t, req{method: c.method, path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"})
		if r.status != c.status || r.code() != c.code {
			t.Errorf("%s: got %d %s, want %d %s", c.name, r.status, truncate(r.body), c.status, c.code)
		}
		if c.field != "" && !bytes.Contains(r.body, []byte(`"field":"`+c.field+`"`)) {
			t.Errorf("%s: the problem does not name %s: %s", c.name, c.field, truncate(r.body))
		}
		if after := a.eventCount(t); after != before {
			t.Errorf("%s: %d events were written", c.name, after-before)
		}
	}

	// Query parameters of the reads (once the read models know the Admin).
	_, pos := a.invite(t, ws, adm, "sync@bad.test", "Editor")
	a.must(t, 200, req{method: "GET", path: base + "/users", token: adm, headers: consistent(pos)})
	a.must(t, 200, req{method: "GET", path: base + "/audit", token: adm, headers: consistent(pos)})
	for _, q := range []struct{ path, field string }{
		{base + "/users?limit=abc", "limit"},
		{base + "/users?limit=0", "limit"},
		{base + "/users?limit=501", "limit"},
		{base + "/users?role=Overlord", "role"},
		{base + "/users?cursor=forged", "cursor"},
		{base + "/audit?actor=bob", "actor"},
		{base + "/audit?from=yesterday", "from"},
		{base + "/audit?action=Exploded", "action"},
		{base + "/audit?cursor=forged", "cursor"},
		{base + "/audit?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "from"},
	} {
		r := a.do(t, req{method: "GET", path: q.path, token: adm})
		if r.status != 400 || r.code() != "invalid_input" || !bytes.Contains(r.body, []byte(`"field":"`+q.field+`"`)) {
			t.Errorf("GET %s: got %d %s, want 400 invalid_input naming %s", q.path, r.status, truncate(r.body), q.field)
		}
	}
}

func manyAddresses(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "user%d@many.test,", i)
	}
	return b.String()
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
