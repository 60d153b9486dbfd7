package httpapi_test

import (
	"bytes"
	"encoding/json"
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
	a, ws, _, adm := newAdminWorkspace(t, "Bad input", "admin@bad.test")
	member, _ := a.join(t, ws, adm, "member@bad.test", "Editor")
	invited := "pending@bad.test"
	pendingToken := a.pending(t, ws, adm, invited, "Editor")
	base := "/v1/workspaces/" + ws.String()
	user := base + "/users/" + member.String()
	reviewID, _ := a.startReview(t, ws, adm, "Bad input")
	review := base + "/access-reviews/" + reviewID.String()

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
		{"start a review", "POST", base + "/access-reviews", adm, `{"name":"R"}`, false, []string{"/v1/workspaces/nope/access-reviews"}},
		{"decide an item", "PUT", review + "/items/" + member.String(), adm, `{"decision":"change_role","role":"Editor","comment":"c"}`, true,
			[]string{base + "/access-reviews/nope/items/" + member.String(), review + "/items/nope"}},
		{"complete a review", "POST", review + "/complete", adm, `{}`, false, []string{base + "/access-reviews/nope/complete"}},
		{"subscribe a webhook", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/hook","events":["*"]}`, false, []string{"/v1/workspaces/nope/webhooks"}},
		{"remove a webhook", "DELETE", base + "/webhooks/" + uuid.NewString(), adm, `{}`, false, []string{base + "/webhooks/nope"}},
		{"replay a webhook", "POST", base + "/webhooks/" + uuid.NewString() + "/replay", adm, `{"fromPosition":"1-0"}`, false, []string{base + "/webhooks/nope/replay"}},
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
			a.refused(t, ep.name+", "+c.name, req{method: ep.method, path: c.path, token: ep.token, body: []byte(c.body), contentType: c.contentType}, c.status, c.code, "", "")
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
		{"lookup token missing", "POST", "/v1/invitations/lookup", "", `{}`, 400, "invalid_input", "token"},
		{"new role missing", "PUT", user + "/role", adm, `{}`, 400, "invalid_input", "role"},
		{"malformed token", "POST", "/v1/invitations/lookup", "", `{"token":"abc"}`, 400, "invalid_token", "token"},
		{"accept without a name", "POST", "/v1/invitations/accept", "", `{"token":"` + pendingToken + `","name":""}`, 400, "invalid_name", "name"},
		{"empty body", "PUT", user + "/role", adm, ``, 400, "invalid_json", ""},
		{"review name missing", "POST", base + "/access-reviews", adm, `{}`, 400, "invalid_input", "name"},
		{"decision missing", "PUT", review + "/items/" + member.String(), adm, `{"comment":"c"}`, 400, "invalid_input", "decision"},
		{"decision of the wrong type", "PUT", review + "/items/" + member.String(), adm, `{"decision":1}`, 400, "invalid_json", "decision"},
		{"comment too long", "PUT", review + "/items/" + member.String(), adm, fmt.Sprintf(`{"decision":"keep","comment":%q}`, strings.Repeat("c", 1001)), 400, "invalid_input", "comment"},
		{"webhook url missing", "POST", base + "/webhooks", adm, `{"events":["*"]}`, 400, "invalid_input", "url"},
		{"webhook events missing", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/hook"}`, 400, "invalid_input", "events"},
		{"webhook events empty", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/hook","events":[]}`, 400, "invalid_input", "events"},
		{"webhook event unknown", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/hook","events":["Exploded"]}`, 400, "invalid_input", "events"},
		{"webhook events of the wrong type", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/hook","events":"*"}`, 400, "invalid_json", "events"},
		{"webhook url not http", "POST", base + "/webhooks", adm, `{"url":"ftp://203.0.113.10/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook url with a password", "POST", base + "/webhooks", adm, `{"url":"https://u:p@203.0.113.10/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook url too long", "POST", base + "/webhooks", adm, `{"url":"https://203.0.113.10/` + strings.Repeat("a", 2048) + `","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook to the loopback", "POST", base + "/webhooks", adm, `{"url":"http://127.0.0.1:8080/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook to localhost", "POST", base + "/webhooks", adm, `{"url":"http://localhost/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook to the metadata service", "POST", base + "/webhooks", adm, `{"url":"http://169.254.169.254/latest/meta-data/","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook to a private network", "POST", base + "/webhooks", adm, `{"url":"https://10.0.0.7/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"webhook to a mapped loopback", "POST", base + "/webhooks", adm, `{"url":"http://[::ffff:127.0.0.1]/hook","events":["*"]}`, 400, "webhook_url_forbidden", "url"},
		{"replay from a bad position", "POST", base + "/webhooks/" + uuid.NewString() + "/replay", adm, `{"fromPosition":"yesterday"}`, 400, "invalid_input", "fromPosition"},
		{"replay of an unknown webhook", "POST", base + "/webhooks/" + uuid.NewString() + "/replay", adm, `{}`, 404, "webhook_not_found", ""},
	} {
		a.refused(t, c.name, req{method: c.method, path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"}, c.status, c.code, c.field, "")
	}

	// Query parameters of the reads (once the read models know the Admin).
	_, pos := a.invite(t, ws, adm, "sync@bad.test", "Editor")
	a.must(t, 200, req{method: "GET", path: base + "/users", token: adm, headers: consistent(pos)})
	a.must(t, 200, req{method: "GET", path: base + "/audit", token: adm, headers: consistent(pos)})
	var hook struct{ WebhookID string }
	a.must(t, 201, req{method: "POST", path: base + "/webhooks", token: adm, body: map[string]any{"url": "https://203.0.113.10/hook", "events": []string{"*"}}}).json(t, &hook)
	for _, q := range []struct{ path, field string }{
		{base + "/webhooks/" + hook.WebhookID + "/deliveries?limit=0", "limit"},
		{base + "/webhooks/" + hook.WebhookID + "/deliveries?cursor=forged", "cursor"},
		{base + "/users?limit=abc", "limit"},
		{base + "/users?limit=0", "limit"},
		{base + "/users?limit=501", "limit"},
		{base + "/users?role=Overlord", "role"},
		{base + "/users?cursor=forged", "cursor"},
		{base + "/users?inactiveSince=yesterday", "inactiveSince"},
		{base + "/users?inactiveSince=2030-01-01", "inactiveSince"},
		{base + "/users?sort=email", "sort"},
		{base + "/users?sort=lastLoginAt&inactiveSince=2030-01-01T00:00:00%2B01:00&cursor=forged", "cursor"},
		{base + "/audit?actor=bob", "actor"},
		{base + "/audit?from=yesterday", "from"},
		{base + "/audit?action=Exploded", "action"},
		{base + "/audit?cursor=forged", "cursor"},
		{base + "/audit?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "from"},
	} {
		r := a.do(t, req{method: "GET", path: q.path, token: adm})
		if r.status != 400 || r.code() != "invalid_input" || !fieldNamed(r, q.field) {
			t.Errorf("GET %s: got %d %s, want 400 invalid_input naming %s", q.path, r.status, truncate(r.body), q.field)
		}
	}
}

// TestLenientJSONIsRefused: a body that a lenient decoder would read one
// way and a person another (a key given twice, a key in other capitals than
// the field's, bytes that are not UTF-8) is 400 invalid_json, naming the
// field, and writes nothing. Before, the last duplicate or the capitalised
// key won, so both role examples invited as Admin.
func TestLenientJSONIsRefused(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Strict JSON", "admin@strict.test")
	pending := a.pending(t, ws, adm, "pending@strict.test", "Editor")
	invitations := "/v1/workspaces/" + ws.String() + "/invitations"
	for _, c := range []struct {
		name, path, token, body, field string
	}{
		{"role given twice", invitations, adm, `{"emails":["dup@strict.test"],"role":"Editor","role":"Admin"}`, "role"},
		{"role given again in capitals", invitations, adm, `{"emails":["case@strict.test"],"role":"Editor","ROLE":"Admin"}`, "ROLE"},
		{"role only in capitals", invitations, adm, `{"emails":["caps@strict.test"],"Role":"Admin"}`, "Role"},
		{"nested key given twice", "/v1/workspaces", systemToken, `{"name":"W","owner":{"email":"a@w.test","email":"b@w.test","name":"O"}}`, "owner.email"},
		{"nested key in capitals", "/v1/workspaces", systemToken, `{"name":"W","owner":{"EMAIL":"a@w.test","name":"O"}}`, "owner.EMAIL"},
		{"invalid UTF-8 in an address", invitations, adm, "{\"emails\":[\"x\xff@strict.test\"],\"role\":\"Editor\"}", ""},
		{"invalid UTF-8 in a name", "/v1/invitations/accept", "", "{\"token\":\"" + pending + "\",\"name\":\"P\xc3\x28\"}", ""},
		{"lone surrogate escape", "/v1/invitations/accept", "", `{"token":"` + pending + `","name":"P\ud800"}`, ""},
	} {
		a.refused(t, c.name, req{method: "POST", path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"}, 400, "invalid_json", c.field, "")
	}
}

// TestDecodeRefusesAmbiguousBodies runs the decoders alone on the bodies a
// lenient decoder reads another way than a person does.
func TestDecodeRefusesAmbiguousBodies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ kind, body string }{
		{"invite", `{"emails":"a@b.test","role":"Editor","role":"Admin"}`},
		{"invite", `{"emails":"a@b.test","role":"Editor","ROLE":"Admin"}`},
		{"invite", `{"emails":"a@b.test","emails":"c@d.test","role":"Editor"}`},
		{"role", `{"role":"Editor","role":"Admin"}`},
		{"role", `{"Role":"Admin"}`},
		{"settings", `{"managersMayGrantAdmin":false,"managersmaygrantadmin":true}`},
		{"settings", `{"managersMayGrantAdmin":false,"managersMayGrantAdmin":true}`},
		{"workspace", `{"name":"W","owner":{"email":"o@w.test","name":"O","name":"P"}}`},
		{"accept", "{\"token\":\"t\",\"name\":\"\xff\"}"},
		{"token", "{\"token\":\"\xed\xa0\x80\"}"}, // an encoded surrogate
		{"login", `{"userId":"x","USERID":"y"}`},
		{"empty", "{\"\xff\":1}"},
	} {
		status, code := httpapi.DecodeForTest(c.kind, "application/json", []byte(c.body))
		if status != 400 || code != "invalid_json" {
			t.Errorf("%s %q: got %d %q, want 400 invalid_json", c.kind, c.body, status, code)
		}
	}
}

// TestLookAlikesAndHiddenCharactersAreRefused: addresses and names with
// invisible, text-direction or control characters, addresses mixing
// scripts and IP addresses are refused, 400 naming the field (or, in an
// invitation batch, the address's outcome is invalid with its reason), and
// nothing is written. Spellings of one address are one account.
func TestLookAlikesAndHiddenCharactersAreRefused(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Look-alikes", "admin@lookalike.test")
	pending := a.pending(t, ws, adm, "pending@lookalike.test", "Editor")

	workspace := func(name, email, ownerName string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "owner": map[string]string{"email": email, "name": ownerName}})
		return string(b)
	}
	accept := func(name string) string {
		b, _ := json.Marshal(map[string]string{"token": pending, "name": name})
		return string(b)
	}
	for _, c := range []struct {
		name, path, token, body, code, field, reason string
	}{
		{"zero-width space in the owner's address", "/v1/workspaces", systemToken, workspace("W", "ow\u200bner@w.test", "O"), "invalid_email", "owner.email", "invisible character (U+200B)"},
		{"right-to-left override in the owner's address", "/v1/workspaces", systemToken, workspace("W", "owner@\u202etset.w", "O"), "invalid_email", "owner.email", "text-direction control character (U+202E)"},
		{"Cyrillic look-alike in the owner's domain", "/v1/workspaces", systemToken, workspace("W", "owner@lookalik\u0435.test", "O"), "invalid_email", "owner.email", "mixes Cyrillic and Latin"},
		{"IP address as the owner's domain", "/v1/workspaces", systemToken, workspace("W", "x@127.0.0.1", "O"), "invalid_email", "owner.email", "IP address"},
		{"numeric owner's domain", "/v1/workspaces", systemToken, workspace("W", "x@10.1", "O"), "invalid_email", "owner.email", "ends in a number"},
		{"right-to-left override in the workspace name", "/v1/workspaces", systemToken, workspace("Acme\u202eevil", "o@w.test", "O"), "invalid_name", "name", "text-direction control character"},
		{"zero-width space in the workspace name", "/v1/workspaces", systemToken, workspace("Ac\u200bme", "o@w.test", "O"), "invalid_name", "name", "invisible character"},
		{"control character in the workspace name", "/v1/workspaces", systemToken, workspace("Acme\u0085Corp", "o@w.test", "O"), "invalid_name", "name", "control character"},
		{"bidi isolate in the owner's name", "/v1/workspaces", systemToken, workspace("W", "o@w.test", "\u2067Olga"), "invalid_name", "owner.name", "text-direction control character"},
		{"byte order mark in the owner's name", "/v1/workspaces", systemToken, workspace("W", "o@w.test", "Ol\ufeffga"), "invalid_name", "owner.name", "invisible character"},
		{"right-to-left override in the invitee's name", "/v1/invitations/accept", "", accept("Nora\u202eadmin"), "invalid_name", "name", "text-direction control character"},
		{"zero-width joiner out of place in the invitee's name", "/v1/invitations/accept", "", accept("No\u200dra"), "invalid_name", "name", "cannot have"},
		{"escape in the invitee's name", "/v1/invitations/accept", "", accept("Nora\x1b[2J"), "invalid_name", "name", "control character"},
		{"invitee's name of 201 characters once composed", "/v1/invitations/accept", "", accept(strings.Repeat("e\u0301", 201)), "invalid_name", "name", "longer than 200"},
	} {
		a.refused(t, c.name, req{method: "POST", path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"}, 400, c.code, c.field, c.reason)
	}

	// In a batch each such address is invalid, with its reason.
	before := a.eventCount(t)
	bad := []string{"ja\u200bne@lookalike.test", "jane@\u202etset.ekilakool", "j\u0430ne@lookalike.test", "jane@p\u0430ypal.com", "x@127.0.0.1", "x@[10.0.0.1]", "x@0x7f.0x1"}
	results, _ := a.invite(t, ws, adm, bad, "Editor")
	if len(results) != len(bad) {
		t.Fatalf("got %d results, want %d", len(results), len(bad))
	}
	for i, r := range results {
		if r.Outcome != "invalid" || r.Detail == "" || r.UserID != nil {
			t.Errorf("%q: got %+v, want invalid with a reason", bad[i], r)
		}
	}
	if after := a.eventCount(t); after != before {
		t.Errorf("the batch of invalid addresses wrote %d events", after-before)
	}

	// Every spelling of one address is one person.
	first, _ := a.invite(t, ws, adm, "jane@xn--mnchen-3ya.de", "Editor")
	again, _ := a.invite(t, ws, adm, []string{"Jane@MÜNCHEN.de", "jane@mu\u0308nchen.de", "ｊａｎｅ@münchen.de"}, "Editor")
	if first[0].Outcome != "invited" || first[0].Email != "jane@münchen.de" || first[0].UserID == nil {
		t.Fatalf("first spelling: got %+v, want jane@münchen.de invited", first[0])
	}
	if len(again) != 1 || again[0].Outcome != "already_invited" || *again[0].UserID != *first[0].UserID {
		t.Errorf("other spellings: got %+v, want one already_invited %s", again, *first[0].UserID)
	}
}

// refused sends rq, which the API must refuse: it answers status with code
// in a problem that names field and says reason (each when given), and
// nothing is written.
func (a *api) refused(t testing.TB, name string, rq req, status int, code, field, reason string) {
	t.Helper()
	before := a.eventCount(t)
	r := a.do(t, rq)
	if r.status != status || r.code() != code {
		t.Errorf("%s: got %d %s, want %d %s", name, r.status, truncate(r.body), status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: content type %q", name, ct)
	}
	if field != "" && !fieldNamed(r, field) {
		t.Errorf("%s: the problem does not name %s: %s", name, field, truncate(r.body))
	}
	if reason != "" && !bytes.Contains(r.body, []byte(reason)) {
		t.Errorf("%s: the problem does not say %q: %s", name, reason, truncate(r.body))
	}
	if after := a.eventCount(t); after != before {
		t.Errorf("%s: %d events were written", name, after-before)
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
