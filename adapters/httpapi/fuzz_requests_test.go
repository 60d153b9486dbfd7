package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/httpapi"
)

// FuzzRequests sends arbitrary bodies, content types, query strings and
// X-Consistent-With values to the real handlers on a real PostgreSQL, each
// as a caller allowed to use the endpoint. Bad input never answers a 5xx
// (504 projection_lag only for a position not reached yet); every refusal
// is a problem with a code; and every exchange is checked against
// openapi.yaml by the suite's client, so the server accepts nothing the
// document refuses and answers nothing it does not describe.
func FuzzRequests(f *testing.F) {
	a := newAPIWith(f, func(c *httpapi.Config) {
		c.ConsistencyTimeout = 200 * time.Millisecond
		// Each input comes from an address of its own (X-Forwarded-For),
		// so that the token endpoints' limit per client does not end the
		// fuzzing of their bodies.
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	var n atomic.Uint32
	ws, owner, _ := a.createWorkspace(f, "Fuzz", "admin@fuzz.test")
	admin := userToken(owner)
	editor, _ := a.join(f, ws, admin, "editor@fuzz.test", "Editor")
	res, _ := a.invite(f, ws, admin, []string{"pending@fuzz.test", "lookup@fuzz.test"}, "Editor")
	pending := res[0].UserID.String()
	lookup := a.links.latest(f, "lookup@fuzz.test")
	base := "/v1/workspaces/" + ws.String()
	endpoints := []struct{ method, path, token string }{
		{"POST", "/v1/workspaces", systemToken},
		{"POST", base + "/invitations", admin},
		{"PUT", base + "/users/" + editor.String() + "/role", admin},
		{"POST", base + "/users/" + editor.String() + "/suspend", admin},
		{"POST", base + "/users/" + editor.String() + "/reactivate", admin},
		{"POST", base + "/users/" + pending + "/invitation/resend", admin},
		{"DELETE", base + "/users/" + pending, admin},
		{"POST", base + "/logins", admin},
		{"POST", base + "/logins", systemToken},
		{"PUT", base + "/settings", admin},
		{"POST", "/v1/invitations/lookup", ""},
		{"POST", "/v1/invitations/accept", ""},
		{"GET", base + "/users", admin},
		{"GET", base + "/users/" + editor.String(), admin},
		{"GET", base + "/audit", admin},
		{"GET", "/v1/me/workspaces", admin},
	}
	for i, e := range endpoints {
		var bodies []string
		switch {
		case e.method == "GET":
			bodies = []string{""}
		case strings.HasSuffix(e.path, "/workspaces"):
			bodies = []string{`{"name":"W","owner":{"email":"o@w.test","name":"O"}}`, `{"name":"W","owner":{"email":"o@w.test","name":"O"},"name":"X"}`}
		case strings.HasSuffix(e.path, "/invitations"):
			bodies = []string{`{"emails":"a@b.test, c@d.test","role":"Editor"}`, `{"emails":["a@b.test"],"role":"Editor","ROLE":"Admin"}`, `{"emails":"x@127.0.0.1","role":"Monitor"}`}
		case strings.HasSuffix(e.path, "/role"):
			bodies = []string{`{"role":"Manager"}`, `{"role":"Editor","role":"Admin"}`, `{"role":"owner"}`}
		case strings.HasSuffix(e.path, "/settings"):
			bodies = []string{`{"managersMayGrantAdmin":false}`, `{"managersMayGrantAdmin":"yes"}`}
		case strings.HasSuffix(e.path, "/lookup"):
			bodies = []string{`{"token":"` + lookup + `"}`, `{"token":"` + lookup[:40] + "\n" + lookup[40:84] + `"}`}
		case strings.HasSuffix(e.path, "/accept"):
			bodies = []string{`{"token":"` + lookup + `x","name":"N"}`, `{"token":"AAAA","name":"` + "\xff" + `"}`}
		case strings.HasSuffix(e.path, "/logins"):
			bodies = []string{"", `{"userId":"` + editor.String() + `"}`, `{"userId":"` + strings.ToUpper(editor.String()) + `"}`}
		default:
			bodies = []string{"", "{}"}
		}
		for _, b := range bodies {
			f.Add(uint8(i), "application/json", []byte(b), "", "")
		}
	}
	f.Add(uint8(12), "", []byte(nil), "1-1", "limit=5&status=active&q=a")
	f.Add(uint8(12), "", []byte(nil), "99999999999-1", "cursor=AQ")
	f.Add(uint8(12), "", []byte(nil), "01-1", "role=admin&limit=0")
	f.Add(uint8(14), "", []byte(nil), "", "action=RoleChanged'&from=2024-01-01T00:00:00Z")
	f.Add(uint8(1), "application/json; charset=latin1", []byte(`{"emails":"a@b.test","role":"Editor"}`), "", "")
	f.Add(uint8(1), "text/plain", []byte(`{"emails":"a@b.test","role":"Editor"}`), "", "")

	f.Fuzz(func(t *testing.T, which uint8, contentType string, body []byte, consistentWith, query string) {
		e := endpoints[int(which)%len(endpoints)]
		if !headerValue(contentType) || !headerValue(consistentWith) || !plainQuery(query) {
			return // the HTTP client refuses to send it; the server never sees it
		}
		path := e.path
		if query != "" {
			path += "?" + query
		}
		if _, err := url.Parse(a.url + path); err != nil {
			return
		}
		i := n.Add(1)
		rq := req{method: e.method, path: path, token: e.token, body: body, contentType: contentType,
			headers: map[string]string{"X-Forwarded-For": fmt.Sprintf("10.%d.%d.%d", byte(i>>16), byte(i>>8), byte(i))}}
		if consistentWith != "" {
			rq.headers[httpapi.HeaderConsistentWith] = consistentWith
		}
		r := a.do(t, rq)
		switch {
		case r.status == http.StatusGatewayTimeout && consistentWith != "" && r.code() == "projection_lag":
		case r.status >= 500:
			t.Fatalf("%s %s %q (Content-Type %q, X-Consistent-With %q): %d %s", e.method, path, body, contentType, consistentWith, r.status, truncate(r.body))
		case r.status >= 400 && r.code() == "":
			t.Fatalf("%s %s %q: %d without a problem code: %s", e.method, path, body, r.status, truncate(r.body))
		}
	})
}

// headerValue reports whether Go's HTTP client sends v as a header value.
func headerValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(v) == v
}

// plainQuery reports whether q can travel as a request line's query.
func plainQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= 0x20 || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}
