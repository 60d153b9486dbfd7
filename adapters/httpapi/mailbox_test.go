package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
)

// sliceMailbox is the Mailbox port over a slice, newest message last; it
// remembers the workspaces each List was asked for.
type sliceMailbox struct {
	mu    sync.Mutex
	msgs  []httpapi.MailboxMessage
	calls [][]uuid.UUID
}

func (m *sliceMailbox) List(_ context.Context, workspaces []uuid.UUID, limit int) ([]httpapi.MailboxMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, workspaces)
	var out []httpapi.MailboxMessage
	for i := len(m.msgs) - 1; i >= 0 && len(out) < limit; i-- {
		if workspaces == nil || slices.Contains(workspaces, m.msgs[i].WorkspaceID) {
			out = append(out, m.msgs[i])
		}
	}
	return out, nil
}

func (m *sliceMailbox) lastCall() (workspaces []uuid.UUID, called bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.calls) == 0 {
		return nil, false
	}
	return m.calls[len(m.calls)-1], true
}

// mailboxPage is GET /v1/dev/mailbox's answer, read into the server's own
// items: the client checks the wire form against openapi.yaml.
type mailboxPage struct {
	Items []httpapi.MailboxItem `json:"items"`
}

func (p mailboxPage) subjects() []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.Subject)
	}
	return out
}

func TestDevMailbox(t *testing.T) {
	t.Parallel()
	box := &sliceMailbox{}
	a := newAPIWith(t, func(c *httpapi.Config) { c.Mailbox = box })
	wsA, ownerA, _ := a.createWorkspace(t, "Mail A", "owner@a.test")
	wsB, ownerB, _ := a.createWorkspace(t, "Mail B", "owner@b.test")
	admA := userToken(ownerA)
	manager, _ := a.join(t, wsA, admA, "manager@a.test", "Manager")
	editor, _ := a.join(t, wsA, admA, "editor@a.test", "Editor")
	suspended, _ := a.join(t, wsA, admA, "suspended@a.test", "Manager")
	var p struct{ Position string }
	a.must(t, 200, req{method: "POST", path: "/v1/workspaces/" + wsA.String() + "/users/" + suspended.String() + "/suspend", token: admA}).json(t, &p)

	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	box.msgs = []httpapi.MailboxMessage{
		{ID: uuid.New(), WorkspaceID: wsA, InvitationID: uuid.New(), To: "x@a.test", Subject: "A1", Text: "link", HTML: "<p>link</p>", SentAt: sent},
		{ID: uuid.New(), WorkspaceID: wsB, InvitationID: uuid.New(), To: "y@b.test", Subject: "B1", Text: "link", SentAt: sent.Add(time.Minute)},
		{ID: uuid.New(), WorkspaceID: wsA, To: "z@a.test", Subject: "A2", Text: "link", SentAt: sent.Add(2 * time.Minute)},
	}

	for _, c := range []struct {
		name, token, query string
		want               []string
		asked              []uuid.UUID // the workspaces List was asked for; nil: all
		askedAtAll         bool
	}{
		{"system sees all, newest first", systemToken, "", []string{"A2", "B1", "A1"}, nil, true},
		{"system with a limit", systemToken, "?limit=1", []string{"A2"}, nil, true},
		{"Admin of A", admA, "", []string{"A2", "A1"}, []uuid.UUID{wsA}, true},
		{"Admin of B", userToken(ownerB), "?limit=500", []string{"B1"}, []uuid.UUID{wsB}, true},
		{"Manager of A: the links could grant more than a Manager may", userToken(manager), "", nil, nil, false},
		{"Editor of A", userToken(editor), "", nil, nil, false},
		{"suspended Manager of A", userToken(suspended), "", nil, nil, false},
		{"stranger", userToken(uuid.New()), "", nil, nil, false},
	} {
		box.mu.Lock()
		box.calls = nil
		box.mu.Unlock()
		var page mailboxPage
		r := a.must(t, 200, req{method: "GET", path: "/v1/dev/mailbox" + c.query, token: c.token, headers: consistent(p.Position)})
		r.json(t, &page)
		if got := page.subjects(); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v (%s)", c.name, got, c.want, r.body)
		}
		if page.Items == nil {
			t.Errorf("%s: items is %s, want a list", c.name, r.body)
		}
		asked, called := box.lastCall()
		if called != c.askedAtAll || !slices.Equal(asked, c.asked) || (called && (asked == nil) != (c.asked == nil)) {
			t.Errorf("%s: List asked for %v (called %v), want %v (called %v)", c.name, asked, called, c.asked, c.askedAtAll)
		}
	}

	var page mailboxPage
	a.must(t, 200, req{method: "GET", path: "/v1/dev/mailbox?limit=3", token: systemToken}).json(t, &page)
	first, last := page.Items[2], page.Items[0]
	if first.WorkspaceID == nil || *first.WorkspaceID != wsA || first.InvitationID == nil || first.To != "x@a.test" ||
		first.HTML != "<p>link</p>" || !first.SentAt.Equal(sent) || first.ID != box.msgs[0].ID {
		t.Errorf("oldest message: %+v, want %+v", first, box.msgs[0])
	}
	if last.InvitationID != nil {
		t.Errorf("a message without an invitation shows invitationId %v, want null", last.InvitationID)
	}

	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=501", "?limit=ten", "?limit="} {
		if r := a.do(t, req{method: "GET", path: "/v1/dev/mailbox" + q, token: systemToken}); r.status != 400 || r.code() != "invalid_input" || !fieldNamed(r, "limit") {
			t.Errorf("GET /v1/dev/mailbox%s: got %d %s, want 400 invalid_input naming limit", q, r.status, truncate(r.body))
		}
	}
	if r := a.do(t, req{method: "GET", path: "/v1/dev/mailbox"}); r.status != http.StatusUnauthorized || r.code() != "unauthenticated" {
		t.Errorf("without a token: got %d %s, want 401 unauthenticated", r.status, r.body)
	}
}

func TestDevMailboxIsAbsentWithoutAMailbox(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	if r := a.do(t, req{method: "GET", path: "/v1/dev/mailbox", token: systemToken}); r.status != http.StatusNotFound || r.code() != "not_found" {
		t.Errorf("GET /v1/dev/mailbox without a mailbox: got %d %s, want 404 not_found", r.status, r.body)
	}
}
