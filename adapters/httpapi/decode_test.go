package httpapi_test

import (
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/domain"
)

var bodyKinds = []string{"workspace", "invite", "role", "token", "accept", "login", "settings", "empty"}

// FuzzDecodeRequests feeds the request decoders arbitrary bodies and
// content types: they never panic, and every refusal is a 400, 413 or 415
// problem, never a 500.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"name":"W","owner":{"email":"o@w.test","name":"O"}}`},
		{"application/json", `{"emails":"a@b.test, c@d.test","role":"Editor"}`},
		{"application/json", `{"emails":["a@b.test"],"role":"Editor"}`},
		{"application/json", `{"emails":[1,2],"role":null}`},
		{"application/json; charset=utf-8", `{"role":"Admin"}`},
		{"application/json; charset=latin1", `{"role":"Admin"}`},
		{"application/problem+json", `{"token":"abc"}`},
		{"application/json", `{"token":"abc","name":"\u0000"}`},
		{"application/json", `{"userId":"00000000-0000-0000-0000-000000000000"}`},
		{"application/json", `{"managersMayGrantAdmin":true}`},
		{"application/json", `{"managersMayGrantAdmin":true}{}`},
		{"application/json", `{}`},
		{"application/json", `{`},
		{"application/json", `null`},
		{"application/json", `[]`},
		{"application/json", `{"owner":{"email":{"a":1}}}`},
		{"application/json", "\xff\xfe{}"},
		{"text/plain", `{}`},
		{"", `{}`},
		{"application/json", ``},
		{"multipart/form-data; boundary=x", `--x`},
		{"application/json", `{"emails":"` + strings.Repeat("a@b.test,", 600) + `"}`},
	} {
		for i := range bodyKinds {
			f.Add(i, seed.ct, []byte(seed.body))
		}
	}
	f.Fuzz(func(t *testing.T, kind int, contentType string, body []byte) {
		if kind < 0 {
			kind = -kind
		}
		k := bodyKinds[kind%len(bodyKinds)]
		status, code := httpapi.DecodeForTest(k, contentType, body)
		switch status {
		case 0:
			if code != "" {
				t.Fatalf("%s: decoded yet code %q", k, code)
			}
		case 400, 413, 415:
			if code == "" {
				t.Fatalf("%s: status %d without a code", k, status)
			}
		default:
			t.Fatalf("%s: %q with content type %q: status %d %s, want 400, 413 or 415", k, body, contentType, status, code)
		}
		if len(body) > httpapi.MaxBodyBytes && status != 413 {
			t.Fatalf("%s: a body of %d bytes answered %d", k, len(body), status)
		}
	})
}

// TestEveryDomainCodeHasAStatus guards the one table: a domain code without
// a status would answer 500.
func TestEveryDomainCodeHasAStatus(t *testing.T) {
	t.Parallel()
	want := map[domain.Code]int{
		domain.CodeInvalidInput: 400, domain.CodeInvalidEmail: 400, domain.CodeInvalidRole: 400, domain.CodeInvalidName: 400,
		domain.CodeEmptyBatch: 400, domain.CodeBatchTooLarge: 400, domain.CodeInvalidToken: 400,
		domain.CodeWorkspaceNotFound: 404, domain.CodeUserNotFound: 404, domain.CodeInvitationNotFound: 404,
		domain.CodeNotAllowed: 403, domain.CodeMemberSuspended: 403,
		domain.CodeLastAdmin: 409, domain.CodeNotActive: 409, domain.CodeNotInvited: 409, domain.CodeWorkspaceExists: 409,
		domain.CodeConcurrencyConflict: 409, domain.CodeInviterCannotGrant: 409,
		domain.CodeInvitationExpired: 410, domain.CodeInvitationRevoked: 410, domain.CodeInvitationUsed: 410,
		domain.CodeRateLimited:    429,
		domain.CodeReviewNotFound: 404, domain.CodeNotInReview: 404,
		domain.CodeReviewCompleted: 409, domain.CodeReviewIncomplete: 409, domain.CodeTooManyOpenReviews: 409,
	}
	for code, status := range want {
		got, ok := httpapi.StatusOf(string(code))
		if !ok || got != status {
			t.Errorf("%s answers %d (in the table: %v), want %d", code, got, ok, status)
		}
	}
}
