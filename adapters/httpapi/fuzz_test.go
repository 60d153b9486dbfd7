package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
)

// The fuzz targets of the HTTP adapter's decoders of outside input: bearer
// tokens, X-Consistent-With, request bodies, the audit query. Each checks
// what an accepted input must be. `make fuzz` runs each for a while; `go
// test` runs the seeds. FuzzRequests (fuzz_requests_test.go) sends bodies
// through the real handlers.

var (
	fuzzSecret = []byte("fuzz-secret-fuzz-secret-fuzz-secret-0123456")
	fuzzNow    = time.Unix(1_800_000_000, 0)
	fuzzSub    = "0190a8f4-0000-7000-8000-000000000001"
)

// fuzzServer is as much of a Server as authenticate needs.
func fuzzServer(issuer, audience string) *Server {
	cfg := Config{JWTSecret: fuzzSecret, JWTIssuer: issuer, JWTAudience: audience, Now: func() time.Time { return fuzzNow }}
	return &Server{cfg: cfg, jwt: newJWTParser(cfg)}
}

func hs256(secret []byte, signing string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return m.Sum(nil)
}

func seg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// FuzzAuthenticate builds bearer tokens from a header and a payload (signed
// with the secret, with another secret, or with a signature of the
// fuzzer's) or takes a whole Authorization header, and checks that a token
// is accepted only with a valid HS256 signature of ours and claims as RFC
// 7519 and api.md have them: exp a number not past, iat and nbf not in the
// future, sub a UUID, names case-sensitive; that the principal is what sub
// and scope say; and that any refusal is 401 unauthenticated.
func FuzzAuthenticate(f *testing.F) {
	exp := strconv.FormatInt(fuzzNow.Add(time.Hour).Unix(), 10)
	hdr := `{"alg":"HS256","typ":"JWT"}`
	for _, s := range []struct{ header, payload string }{
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"scope":"system"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"scope":"events:read"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"scope":"events:read system"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"scope":"admin"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"scope":["system"]}`},
		{hdr, `{"sub":"` + strings.ToUpper(fuzzSub) + `","exp":` + exp + `}`},
		{hdr, `{"sub":"{` + fuzzSub + `}","exp":` + exp + `}`},
		{hdr, `{"sub":"urn:uuid:` + fuzzSub + `","exp":` + exp + `}`},
		{hdr, `{"sub":"00000000-0000-0000-0000-000000000000","exp":` + exp + `}`},
		{hdr, `{"sub":"alice","exp":` + exp + `}`},
		{hdr, `{"sub":"` + fuzzSub + `"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":"` + exp + `"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":1}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `.5,"iat":1799999000}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"iat":1900000000}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"nbf":1900000000}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"iat":"1799999000"}`},
		{hdr, `{"SUB":"` + fuzzSub + `","EXP":` + exp + `}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"Scope":"system"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":1,"exp":` + exp + `}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"iss":"https://platform.test","aud":["billing","usersd"]}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":` + exp + `,"aud":"usersd"}`},
		{hdr, `{"sub":"` + fuzzSub + `","exp":1e999}`},
		{`{"alg":"none"}`, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{`{"alg":"HS512"}`, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{`{"alg":"hs256"}`, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{`{"alg":"HS256","alg":"none"}`, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{`{"alg":"HS256","crit":["exp"]}`, `{"sub":"` + fuzzSub + `","exp":` + exp + `}`},
		{hdr, `[]`},
		{hdr, `{"sub":"` + fuzzSub + "\xff" + `","exp":` + exp + `}`},
	} {
		// Modes: signed by us (0), by another secret (1), by us with the
		// scheme in lower case (4); with an issuer (5) or an audience (10)
		// required.
		for _, mode := range []uint8{0, 1, 4, 5, 10} {
			f.Add(s.header, s.payload, mode, "")
		}
	}
	f.Add("", "", uint8(3), "Bearer")
	f.Add("", "", uint8(3), "Basic dXNlcjpwYXNz")
	f.Add("", "", uint8(3), "Bearer a.b.c")
	f.Add("", "", uint8(3), "Bearer "+strings.Repeat("a", 9000))
	f.Add(hdr, `{"sub":"`+fuzzSub+`","exp":`+exp+`}`, uint8(2), "AAAA")

	servers := []*Server{fuzzServer("", ""), fuzzServer("https://platform.test", ""), fuzzServer("", "usersd")}
	other := []byte("another-secret-another-secret-another-secret")
	f.Fuzz(func(t *testing.T, header, payload string, mode uint8, extra string) {
		srv := servers[int(mode/5)%len(servers)]
		signing := seg([]byte(header)) + "." + seg([]byte(payload))
		var authz string
		switch mode % 5 {
		case 0:
			authz = "Bearer " + signing + "." + seg(hs256(fuzzSecret, signing))
		case 1:
			authz = "Bearer " + signing + "." + seg(hs256(other, signing))
		case 2:
			authz = "Bearer " + signing + "." + extra
		case 3:
			authz = extra
		case 4:
			authz = "bearer   " + signing + "." + seg(hs256(fuzzSecret, signing)) + extra
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", authz)
		p, prob := srv.authenticate(r)
		if prob != nil {
			if prob.Code != codeUnauthenticated {
				t.Fatalf("%q: refused with %s, want %s", authz, prob.Code, codeUnauthenticated)
			}
			if strings.Contains(prob.Detail, signing) || (extra != "" && len(extra) > 8 && strings.Contains(prob.Detail, extra)) {
				t.Fatalf("%q: the problem quotes the token: %s", authz, prob.Detail)
			}
			return
		}
		checkAccepted(t, srv, authz, p)
	})
}

// checkAccepted checks, without jwt, an Authorization header that
// authenticate accepted as p.
func checkAccepted(t *testing.T, srv *Server, authz string, p principal) {
	t.Helper()
	scheme, tok, _ := strings.Cut(authz, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") {
		t.Fatalf("%q: accepted without the Bearer scheme", authz)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q: accepted with %d parts", authz, len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, hs256(fuzzSecret, parts[0]+"."+parts[1])) {
		t.Fatalf("%q: accepted without our HS256 signature", authz)
	}
	var header map[string]any
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &header) != nil || header["alg"] != "HS256" {
		t.Fatalf("%q: accepted with the header %v (alg must be HS256)", authz, header)
	}
	// The claims as RFC 7519 reads them: names are case-sensitive.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]json.RawMessage
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		t.Fatalf("%q: accepted with claims that are not a JSON object: %q", authz, payload)
	}
	leeway := clockLeeway.Seconds()
	now := float64(fuzzNow.Unix())
	number := func(name string) (float64, bool) {
		raw, ok := claims[name]
		if !ok {
			return 0, false
		}
		var n float64
		if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') || json.Unmarshal(raw, &n) != nil {
			t.Fatalf("%q: accepted with %s = %s, not a JSON number", authz, name, raw)
		}
		return n, true
	}
	if e, ok := number("exp"); !ok || e < now-leeway {
		t.Fatalf("%q: accepted with exp %v (present %v): exp is required and must not be past", authz, e, ok)
	}
	for _, name := range []string{"iat", "nbf"} {
		if v, ok := number(name); ok && v > now+leeway {
			t.Fatalf("%q: accepted with %s %v, in the future", authz, name, v)
		}
	}
	var sub string
	if json.Unmarshal(claims["sub"], &sub) != nil {
		t.Fatalf("%q: accepted without a sub string (claims %s)", authz, payload)
	}
	id, err := uuid.Parse(sub)
	if err != nil || len(sub) != 36 || id == uuid.Nil {
		t.Fatalf("%q: accepted with sub %q, not a user id", authz, sub)
	}
	var scope string
	if raw, ok := claims["scope"]; ok && json.Unmarshal(raw, &scope) != nil {
		t.Fatalf("%q: accepted with scope %s, not a string", authz, raw)
	}
	scopes := strings.Fields(scope)
	var want principal
	switch {
	case slices.ContainsFunc(scopes, func(s string) bool { return s != SystemScope && s != EventsReadScope }):
		t.Fatalf("%q: accepted with the scope %q, which usersd does not know", authz, scope)
	case slices.Contains(scopes, SystemScope):
		want = principal{userID: id, system: true}
	case len(scopes) > 0:
		want = principal{eventsOnly: true, reader: id} // no user: its sub only counts its streams
	default:
		want = principal{userID: id}
	}
	if p != want {
		t.Fatalf("%q: principal %+v, want %+v (sub %q, scope %q)", authz, p, want, sub, scope)
	}
	if iss := srv.cfg.JWTIssuer; iss != "" {
		var got string
		if json.Unmarshal(claims["iss"], &got) != nil || got != iss {
			t.Fatalf("%q: accepted with iss %s, want %q", authz, claims["iss"], iss)
		}
	}
	if aud := srv.cfg.JWTAudience; aud != "" {
		var one string
		var many []string
		if !(json.Unmarshal(claims["aud"], &one) == nil && one == aud || json.Unmarshal(claims["aud"], &many) == nil && slices.Contains(many, aud)) {
			t.Fatalf("%q: accepted with aud %s, want %q among them", authz, claims["aud"], aud)
		}
	}
}

// FuzzConsistentWith: a header that is accepted names the position it
// prints as; anything else is absent or 400 invalid_input naming the header.
func FuzzConsistentWith(f *testing.F) {
	for _, s := range []string{
		"", " ", "12-3", " 12-3 ", "0-0", "012-3", "12-03", "+1-2", "1-2-3", "-", "12", "a-b",
		"18446744073709551615-18446744073709551615", "18446744073709551616-0", "1-2\x00", "١٢-٣",
		strings.Repeat("1", 40) + "-" + strings.Repeat("1", 30),
	} {
		f.Add(s, uint64(1), uint64(2))
	}
	f.Fuzz(func(t *testing.T, raw string, commit, prepare uint64) {
		h := http.Header{HeaderConsistentWith: {raw}}
		pos, ok, err := consistentWith(h)
		switch {
		case err != nil:
			var p *Problem
			if ok || !errors.As(err, &p) || p.Code != domain.CodeInvalidInput || statusOf[p.Code] != http.StatusBadRequest ||
				len(p.Errors) != 1 || p.Errors[0].Field != HeaderConsistentWith {
				t.Fatalf("X-Consistent-With %q: %v (ok %v), want a 400 invalid_input naming the header", raw, err, ok)
			}
		case ok:
			if got := pos.String(); got != strings.TrimSpace(raw) {
				t.Fatalf("X-Consistent-With %q: accepted as %v, which prints as %q", raw, pos, got)
			}
		case strings.TrimSpace(raw) != "":
			t.Fatalf("X-Consistent-With %q: ignored", raw)
		}
		want := domain.Position{Commit: commit, Prepare: prepare}
		got, ok, err := consistentWith(http.Header{HeaderConsistentWith: {want.String()}})
		if !ok || err != nil || got != want {
			t.Fatalf("X-Consistent-With %q: got %v, %v, %v; want %v", want.String(), got, ok, err, want)
		}
	})
}

// bodyKind is a request body type and the names of its fields, as api.md
// writes them (by the path of their object: "" is the body, "owner" the
// owner object).
type bodyKind struct {
	name     string
	dst      func() any
	required bool
	fields   map[string][]string
}

var fuzzBodyKinds = []bodyKind{
	{"workspace", func() any { return &createWorkspaceRequest{} }, true, map[string][]string{"": {"name", "owner"}, "owner": {"email", "name"}}},
	{"invite", func() any { return &inviteRequest{} }, true, map[string][]string{"": {"emails", "role"}}},
	{"role", func() any { return &changeRoleRequest{} }, true, map[string][]string{"": {"role"}}},
	{"token", func() any { return &tokenRequest{} }, true, map[string][]string{"": {"token"}}},
	{"accept", func() any { return &acceptRequest{} }, true, map[string][]string{"": {"token", "name"}}},
	{"login", func() any { return &loginRequest{} }, false, map[string][]string{"": {"userId"}}},
	{"settings", func() any { return &settingsRequest{} }, true, map[string][]string{"": {"managersMayGrantAdmin"}}},
	{"empty", func() any { return &emptyRequest{} }, false, map[string][]string{"": {}}},
}

// FuzzDecodeBody decodes arbitrary bodies into each request type. A
// refusal is 400, 413 or 415 with a code. What is accepted is UTF-8, names
// each field once and exactly as api.md spells it, and means what it says:
// the decoded value, encoded again, decodes to itself.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"name":"W","owner":{"email":"o@w.test","name":"O"}}`,
		`{"emails":"a@b.test, c@d.test","role":"Editor"}`,
		`{"emails":["a@b.test"],"role":"Editor"}`,
		`{"emails":null,"role":null}`,
		`{"role":"Editor","role":"Admin"}`,
		`{"role":"Editor","ROLE":"Admin"}`,
		`{"Role":"Admin"}`,
		`{"owner":{"email":"a@b.test","EMAIL":"c@d.test","name":"x"},"name":"W"}`,
		`{"name":"W","owner":{"email":"o@w.test","name":"O"},"owner":null}`,
		`{"token":"abc","name":"\u0000"}`,
		`{"token":"abc","name":"` + "\xff" + `"}`,
		`{"token":"\ud800"}`,
		`{"userId":"00000000-0000-0000-0000-000000000000"}`,
		`{"managersMayGrantAdmin":true}`,
		`{"managersMayGrantAdmin":true}{}`,
		`{"managersMayGrantAdmin":1}`,
		`{}`, `{`, `null`, `[]`, ` {} `, "\ufeff{}", `{"a":1}`,
	} {
		for k := range fuzzBodyKinds {
			f.Add(uint8(k), "application/json", []byte(seed))
		}
	}
	f.Add(uint8(0), "application/json; charset=latin1", []byte(`{}`))
	f.Add(uint8(0), "text/plain", []byte(`{}`))
	f.Add(uint8(0), "", []byte(`{}`))
	f.Add(uint8(0), "application/merge-patch+json", []byte(`{}`))
	f.Fuzz(func(t *testing.T, k uint8, contentType string, body []byte) {
		kind := fuzzBodyKinds[int(k)%len(fuzzBodyKinds)]
		dst := kind.dst()
		err := decodeBody(bodyRequest(contentType, body), dst, kind.required)
		if err != nil {
			p := toProblem(err, nil)
			if s := statusOf[p.Code]; (s != 400 && s != 413 && s != 415) || p.Code == "" {
				t.Fatalf("%s %q: refused as %d %s, want 400, 413 or 415", kind.name, body, s, p.Code)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("%s %q: accepted bytes that are not UTF-8", kind.name, body)
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if problem := checkNames(body, kind.fields); problem != "" {
				t.Fatalf("%s %q: accepted, but %s", kind.name, body, problem)
			}
		}
		again, err := json.Marshal(dst)
		if err != nil {
			t.Fatalf("%s: encode %+v: %v", kind.name, dst, err)
		}
		back := kind.dst()
		if err := decodeBody(bodyRequest("application/json", again), back, true); err != nil || !reflect.DeepEqual(dst, back) {
			t.Fatalf("%s %q decoded as %+v, which encodes as %s and decodes as %+v, %v", kind.name, body, dst, again, back, err)
		}
	})
}

func bodyRequest(contentType string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// checkNames walks a JSON text and says what is wrong with its member
// names: one given twice in an object, or one that is no field there.
func checkNames(body []byte, fields map[string][]string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func(path string) string
	walk = func(path string) string {
		tok, err := dec.Token()
		if err != nil {
			return "it is not one JSON value: " + err.Error()
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				nt, err := dec.Token()
				if err != nil {
					return err.Error()
				}
				name, _ := nt.(string)
				if seen[name] {
					return fmt.Sprintf("%q is given twice in %q", name, path)
				}
				seen[name] = true
				if known, ok := fields[path]; ok && !slices.Contains(known, name) {
					return fmt.Sprintf("%q is not a field of %q (want one of %q)", name, path, known)
				}
				if p := walk(name); p != "" {
					return p
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if p := walk(path + "[]"); p != "" {
					return p
				}
			}
			_, _ = dec.Token()
		}
		return ""
	}
	return walk("")
}

// FuzzAuditQuery reads the audit list's query string and Accept header as
// GET /audit does. A refusal is 400 invalid_input naming a parameter;
// accepted times, ids and limits are what the query says (the action and
// the cursor are checked by the audit package: its FuzzAuditFilter and
// FuzzAuditCursor).
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []struct{ query, accept string }{
		{"", ""},
		{"actor=0190a8f4-0000-7000-8000-000000000001&target=0190a8f4-0000-7000-8000-000000000002", "application/json"},
		{"action=RoleChanged&from=2024-05-01T00:00:00Z&to=2024-06-01T00:00:00.5%2B02:00&limit=500", "text/csv"},
		{"action=RoleChanged'--&limit=0", "application/x-ndjson;q=0.5, text/csv;q=0.9"},
		{"action=roleChanged", "*/*"},
		{"from=2024-06-01T00:00:00Z&to=2024-05-01T00:00:00Z", "text/csv;q=0"},
		{"limit=-1&cursor=x", "application/*;q=x"},
		{"limit=501", ""}, {"limit=1e2", ""}, {"limit=", ""}, {"actor=0190A8F4-0000-7000-8000-000000000001", ""},
		{"actor={0190a8f4-0000-7000-8000-000000000001}", ""}, {"from=2024-05-01", ""}, {"from=10000-01-01T00:00:00Z", ""},
		{"cursor=YXVkaXQudjEuYmVmb3JlOjk", ""}, {"%zz", ""}, {"action=a&action=b", ""},
	} {
		f.Add(s.query, s.accept)
	}
	f.Fuzz(func(t *testing.T, query, accept string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // the server would have answered 400 before any handler
		}
		fl, err := auditFilter(q)
		if err != nil {
			p := toProblem(paramProblem(err), nil)
			if p.Code != domain.CodeInvalidInput || len(p.Errors) == 0 {
				t.Fatalf("%q: refused as %s %v, want invalid_input naming the parameter", query, p.Code, p.Errors)
			}
			return
		}
		if fl.Action != q.Get("action") || fl.Cursor != q.Get("cursor") {
			t.Fatalf("%q: action %q, cursor %q", query, fl.Action, fl.Cursor)
		}
		if fl.Limit < 0 || fl.Limit > audit.MaxLimit || (fl.Limit == 0) != (q.Get("limit") == "" && !q.Has("limit")) {
			t.Fatalf("%q: limit %d", query, fl.Limit)
		}
		for _, c := range []struct {
			name string
			got  time.Time
		}{{"from", fl.From}, {"to", fl.To}} {
			if raw := q.Get(c.name); raw != "" {
				want, err := time.Parse(time.RFC3339Nano, raw)
				if err != nil || !want.Equal(c.got) {
					t.Fatalf("%q: %s %v, want %q", query, c.name, c.got, raw)
				}
			}
		}
		for _, c := range []struct {
			name string
			got  uuid.UUID
		}{{"actor", fl.Actor}, {"target", fl.Target}} {
			if raw := q.Get(c.name); raw != "" && !strings.EqualFold(c.got.String(), raw) {
				t.Fatalf("%q: %s %v, want %q", query, c.name, c.got, raw)
			}
		}
		switch format := exportFormat(accept); format {
		case "json", audit.FormatCSV, audit.FormatNDJSON:
		default:
			t.Fatalf("Accept %q: format %q", accept, format)
		}
	})
}
