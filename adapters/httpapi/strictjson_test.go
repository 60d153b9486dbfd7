package httpapi_test

import (
	"bytes"
	"testing"

	"github.com/usersd/usersd/adapters/httpapi"
)

// TestLenientJSONIsRefused: a body that a lenient decoder would read one
// way and a person another (a key given twice, a key in other capitals than
// the field's, bytes that are not UTF-8) is 400 invalid_json, naming the
// field, and writes nothing. Before, the last duplicate or the capitalised
// key won, so both role examples invited as Admin.
func TestLenientJSONIsRefused(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, _, adm := a.adminWorkspace(t, "Strict JSON", "admin@strict.test")
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
		before := a.eventCount(t)
		r := a.do(t, req{method: "POST", path: c.path, token: c.token, body: []byte(c.body), contentType: "application/json"})
		if r.status != 400 || r.code() != "invalid_json" {
			t.Errorf("%s: got %d %s, want 400 invalid_json", c.name, r.status, truncate(r.body))
		}
		if c.field != "" && !bytes.Contains(r.body, []byte(`"field":"`+c.field+`"`)) {
			t.Errorf("%s: the problem does not name %s: %s", c.name, c.field, truncate(r.body))
		}
		if after := a.eventCount(t); after != before {
			t.Errorf("%s: %d events were written", c.name, after-before)
		}
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
