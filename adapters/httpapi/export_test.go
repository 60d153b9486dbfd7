package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"

	"github.com/usersd/usersd/domain"
)

// DecodeForTest runs the request decoding of the endpoint whose body kind
// is kind ("workspace", "invite", "role", "token", "accept", "login",
// "settings", "empty") on a body, and answers the problem's status and code
// (0 and "" when the body decoded).
func DecodeForTest(kind, contentType string, body []byte) (status int, code string) {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	var dst checked
	required := true
	switch kind {
	case "workspace":
		dst = &createWorkspaceRequest{}
	case "invite":
		dst = &inviteRequest{}
	case "role":
		dst = &changeRoleRequest{}
	case "token":
		dst = &tokenRequest{}
	case "accept":
		dst = &acceptRequest{}
	case "login":
		dst, required = &loginRequest{}, false
	case "settings":
		dst = &settingsRequest{}
	default:
		dst, required = &emptyRequest{}, false
	}
	err := decodeRequest(r, dst, required)
	if err == nil {
		return 0, ""
	}
	p := toProblem(err, nil)
	return statusOf[p.Code], string(p.Code)
}

// StatusOf exposes the code-to-status table.
func StatusOf(code string) (int, bool) {
	s, ok := statusOf[domain.Code(code)]
	return s, ok
}

// ProblemCodes lists every code of the code-to-status table.
func ProblemCodes() []string {
	out := make([]string, 0, len(statusOf))
	for c := range statusOf {
		out = append(out, string(c))
	}
	return out
}

// MailboxItem is a message as GET /v1/dev/mailbox shows it.
type MailboxItem = mailboxItem
