package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/usersd/usersd/adapters/httpapi"
)

// The document is checked against every request the suite makes and every
// answer it gets: the helpers' http.Client goes through openAPIChecker.
// kin-openapi v0.153.0 reads OpenAPI 3.1 and, for a 3.1 document,
// openapi3filter validates with a JSON Schema 2020-12 validator, so the
// document uses 3.1's type arrays (["string", "null"]) rather than 3.0's
// nullable, and those validate as written.

// spec is the served document, loaded and routed once for all tests.
var spec = sync.OnceValues(func() (*openAPISpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPIDocument())
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.yaml: %w", err)
	}
	return &openAPISpec{doc: doc, router: router}, nil
})

type openAPISpec struct {
	doc    *openapi3.T
	router routers.Router
}

func init() {
	// NDJSON has no decoder in openapi3filter; the document describes an
	// export as the array of its lines, so decode it into one.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonDecoder)
}

func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	out := []any{}
	for sc.Scan() {
		var v any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: fmt.Errorf("line %d: %w", len(out)+1, err)}
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// tbKey carries the test a request belongs to, so that a mismatch fails
// that test.
type tbKey struct{}

func withTB(ctx context.Context, tb testing.TB) context.Context {
	return context.WithValue(ctx, tbKey{}, tb)
}

// openAPIChecker is an http.RoundTripper that checks each exchange against
// the document:
//   - an answer must be documented for its operation: status, headers,
//     media type and body;
//   - a request the document refuses must be refused (4xx): otherwise the
//     document is stricter than the server;
//   - a request the document has no operation for must answer the
//     not_found or method_not_allowed problem: otherwise the server has a
//     route the document lacks.
type openAPIChecker struct {
	base http.RoundTripper
	tb   testing.TB // when the request names no test
}

func newOpenAPIClient(tb testing.TB) *http.Client {
	tb.Helper()
	if _, err := spec(); err != nil {
		tb.Fatal(err)
	}
	return &http.Client{Transport: &openAPIChecker{base: http.DefaultTransport, tb: tb}}
}

func (c *openAPIChecker) RoundTrip(r *http.Request) (*http.Response, error) {
	tb, ok := r.Context().Value(tbKey{}).(testing.TB)
	if !ok {
		tb = c.tb
	}
	s, err := spec()
	if err != nil {
		return nil, err
	}
	var body []byte
	if r.Body != nil {
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	// The validators read the copy; the server gets the original.
	vr := r.Clone(r.Context())
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, routeErr := s.router.FindRoute(vr)
	var input *openapi3filter.RequestValidationInput
	var reqErr error
	if routeErr == nil {
		input = &openapi3filter.RequestValidationInput{
			Request: vr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: bearerPresent},
		}
		reqErr = openapi3filter.ValidateRequest(r.Context(), input)
	}

	res, err := c.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	raw, readErr := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if readErr != nil {
		// A cut answer (an export failing midway): hand the client what
		// came and the error, and check nothing.
		res.Body = io.NopCloser(io.MultiReader(bytes.NewReader(raw), errReader{readErr}))
		return res, nil
	}
	res.Body = io.NopCloser(bytes.NewReader(raw))

	what := r.Method + " " + r.URL.RequestURI()
	switch {
	case routeErr != nil:
		checkUndocumented(tb, s, what, routeErr, res, raw)
	case reqErr != nil && res.StatusCode < 400:
		tb.Errorf("openapi: %s: the document refuses the request (%v), yet the server answered %d", what, firstLine(reqErr), res.StatusCode)
	default:
		err := openapi3filter.ValidateResponse(r.Context(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: input,
			Status:                 res.StatusCode,
			Header:                 res.Header,
			Body:                   io.NopCloser(bytes.NewReader(raw)),
			Options:                &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
		})
		if err != nil {
			tb.Errorf("openapi: %s: the answer %d %s does not match the document: %v", what, res.StatusCode, truncate(raw), err)
		}
	}
	return res, nil
}

// checkUndocumented accepts, for a request the document has no operation
// for, only the router's own problems.
func checkUndocumented(tb testing.TB, s *openAPISpec, what string, routeErr error, res *http.Response, raw []byte) {
	want := map[int]string{http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed"}
	code, known := want[res.StatusCode]
	if !known || res.Header.Get("Content-Type") != "application/problem+json" {
		tb.Errorf("openapi: %s: the document has no such operation (%v), yet the server answered %d %s", what, routeErr, res.StatusCode, truncate(raw))
		return
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Errorf("openapi: %s: problem %s: %v", what, truncate(raw), err)
		return
	}
	if err := s.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		tb.Errorf("openapi: %s: the problem %s does not match the Problem schema: %v", what, truncate(raw), err)
	}
	if got := v.(map[string]any)["code"]; got != code {
		tb.Errorf("openapi: %s: the document has no such operation (%v), yet the server answered %d %s, want code %s", what, routeErr, res.StatusCode, truncate(raw), code)
	}
}

// bearerPresent satisfies the bearer scheme when a bearer token is sent;
// whether it is a good one is the server's business (and a test's).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme, tok, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestOpenAPIDocumentIsServed checks that /openapi.yaml serves the embedded
// document, which loads and validates as OpenAPI 3.1.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	r := a.must(t, http.StatusOK, req{method: "GET", path: "/openapi.yaml"})
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
	if !bytes.Equal(r.body, httpapi.OpenAPIDocument()) {
		t.Error("the served document is not the embedded one")
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load the served document: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the served document is not valid: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Components.SecuritySchemes["bearerAuth"] == nil || doc.Components.SecuritySchemes["bearerAuth"].Value.BearerFormat != "JWT" {
		t.Error("no bearer JWT security scheme")
	}
}

// TestEveryDocumentedOperationIsServed calls each operation of the
// document: none may answer as an unknown route (404 not_found or 405).
// With the checking client this also validates one exchange of each.
func TestEveryDocumentedOperationIsServed(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) { c.Mailbox = &sliceMailbox{} })
	ws, owner, _ := a.createWorkspace(t, "Documented", "admin@documented.test")
	s, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range s.doc.Paths.Map() {
		for method := range item.Operations() {
			n++
			p := strings.NewReplacer("{ws}", ws.String(), "{userId}", owner.String()).Replace(path)
			tok := userToken(owner)
			if path == "/v1/workspaces" {
				tok = systemToken
			}
			r := a.do(t, req{method: method, path: p, token: tok})
			if r.status == http.StatusMethodNotAllowed || (r.status == http.StatusNotFound && r.code() == "not_found") {
				t.Errorf("%s %s is documented but answers %d %s", method, path, r.status, truncate(r.body))
			}
		}
	}
	if n < 20 {
		t.Errorf("the document has %d operations; want every endpoint", n)
	}
}

// TestTheCheckerCatchesMismatches makes sure the checker fails a test on
// an answer or a route the document does not describe: without this, a
// checker that checks nothing would pass the suite.
func TestTheCheckerCatchesMismatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, method, path string
		status             int
		contentType, body  string
	}{
		{"undocumented status", "GET", "/healthz", http.StatusTeapot, "text/plain", "ok\n"},
		{"wrong body", "GET", "/v1/me/workspaces", 200, "application/json", `[{"workspaceId":"x"}]`},
		{"undocumented field", "POST", "/v1/invitations/lookup", 400, "application/problem+json",
			`{"type":"urn:usersd:problem:invalid_token","title":"t","status":400,"code":"invalid_token","surprise":1}`},
		{"unknown code", "GET", "/v1/me/workspaces", 403, "application/problem+json",
			`{"type":"urn:usersd:problem:nope","title":"t","status":403,"code":"nope"}`},
		{"undocumented route", "GET", "/v1/secret", 200, "application/json", `{}`},
		{"accepted what the document refuses", "GET", "/v1/me/workspaces", 200, "application/json", `[]`},
	} {
		rec := &recordingTB{TB: t}
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			h := http.Header{"Content-Type": {c.contentType}, "X-Request-Id": {"r1"}}
			return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(strings.NewReader(c.body)), Request: r}, nil
		})
		client := &http.Client{Transport: &openAPIChecker{base: base, tb: rec}}
		hr, _ := http.NewRequest(c.method, "http://usersd.test"+c.path, nil)
		if c.name != "accepted what the document refuses" {
			hr.Header.Set("Authorization", "Bearer x")
		}
		res, err := client.Do(hr)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_ = res.Body.Close()
		if len(rec.errors) == 0 {
			t.Errorf("%s: the checker let %d %s through", c.name, c.status, c.body)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recordingTB keeps the errors reported to it instead of failing.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestProblemCodesAreDocumented keeps the Problem schema's list of codes
// equal to the code-to-status table, and each code's status among the
// statuses the document's description of Problem gives it.
func TestProblemCodesAreDocumented(t *testing.T) {
	t.Parallel()
	s, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	problem := s.doc.Components.Schemas["Problem"].Value
	var documented []string
	for _, v := range problem.Properties["code"].Value.Enum {
		documented = append(documented, v.(string))
	}
	slices.Sort(documented)
	served := httpapi.ProblemCodes()
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("the document's problem codes %v, want the table's %v", documented, served)
	}
	for _, code := range served {
		status, _ := httpapi.StatusOf(code)
		// The description lists "<status> code, code; <status> code ...".
		section := ""
		for _, part := range strings.Split(strings.Join(strings.Fields(problem.Description), " "), ";") {
			if slices.Contains(strings.FieldsFunc(part, func(r rune) bool { return r == ' ' || r == ',' || r == '.' }), code) {
				section = part
			}
		}
		if !strings.Contains(section, fmt.Sprint(status)) {
			t.Errorf("the Problem description puts %s under %q, want under %d", code, strings.TrimSpace(section), status)
		}
	}
}
