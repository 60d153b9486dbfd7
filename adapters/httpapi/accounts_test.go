package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/pii"
)

type accountExport struct {
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	Name        *string   `json:"name"`
	Memberships []struct {
		WorkspaceID   uuid.UUID `json:"workspaceId"`
		WorkspaceName string    `json:"workspaceName"`
		Role, Status  string
	} `json:"memberships"`
	Invitations []struct {
		WorkspaceID uuid.UUID `json:"workspaceId"`
		Role        string    `json:"role"`
	} `json:"invitations"`
	History []struct {
		WorkspaceID uuid.UUID `json:"workspaceId"`
		Items       []struct {
			Role, Status, Action string
			To                   *string
		} `json:"items"`
	} `json:"history"`
	AuditEntries []struct {
		WorkspaceID uuid.UUID `json:"workspaceId"`
		Action      string    `json:"action"`
	} `json:"auditEntries"`
}

func TestAccountLifecycle(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ctx := context.Background()
	wsA, olga, _ := a.createWorkspace(t, "Alpha", "olga@accounts.test")
	wsB, bob, _ := a.createWorkspace(t, "Beta", "bob@accounts.test")
	ann, _ := a.join(t, wsA, userToken(olga), "ann@accounts.test", "Editor")
	res, pos := a.invite(t, wsB, userToken(bob), "ann@accounts.test", "Monitor")
	if *res[0].UserID != ann {
		t.Fatalf("ann got another id in Beta")
	}
	sys := func(method, path string) req {
		return req{method: method, path: path, token: systemToken, headers: consistent(pos)}
	}

	var found struct{ UserID uuid.UUID }
	a.must(t, 200, sys("GET", "/v1/accounts/lookup?email="+url.QueryEscape("ANN@accounts.test"))).json(t, &found)
	if found.UserID != ann {
		t.Errorf("lookup: got %s, want ann %s", found.UserID, ann)
	}
	if r := a.do(t, sys("GET", "/v1/accounts/lookup?email=nobody@accounts.test")); r.status != 404 || r.code() != "account_not_found" {
		t.Errorf("lookup of a stranger: %d %s, want 404 account_not_found", r.status, r.body)
	}
	if r := a.do(t, sys("GET", "/v1/accounts/lookup?email=not-an-address")); r.status != 400 {
		t.Errorf("lookup of a malformed address: %d %s, want 400", r.status, r.body)
	}

	var ex accountExport
	a.must(t, 200, sys("GET", "/v1/accounts/"+ann.String()+"/export")).json(t, &ex)
	if ex.UserID != ann || ex.Email != "ann@accounts.test" || ex.Name == nil || *ex.Name != "ann" {
		t.Errorf("export: %+v, want ann's id, address and name", ex)
	}
	if len(ex.Memberships) != 1 || ex.Memberships[0].WorkspaceID != wsA || ex.Memberships[0].WorkspaceName != "Alpha" || ex.Memberships[0].Role != "Editor" {
		t.Errorf("export memberships: %+v, want Editor of Alpha", ex.Memberships)
	}
	if len(ex.Invitations) != 1 || ex.Invitations[0].WorkspaceID != wsB || ex.Invitations[0].Role != "Monitor" {
		t.Errorf("export invitations: %+v, want Monitor of Beta", ex.Invitations)
	}
	past := map[uuid.UUID]string{}
	for _, h := range ex.History {
		var steps []string
		for _, it := range h.Items {
			steps = append(steps, it.Status+" "+it.Role)
		}
		past[h.WorkspaceID] = strings.Join(steps, ", ")
	}
	if len(past) != 2 || past[wsA] != "invited Editor, active Editor" || past[wsB] != "invited Monitor" {
		t.Errorf("export history: %v, want Alpha invited then active as Editor, Beta invited as Monitor", past)
	}
	var actions []string
	for _, e := range ex.AuditEntries {
		actions = append(actions, e.WorkspaceID.String()[:4]+":"+e.Action)
	}
	if len(ex.AuditEntries) != 3 {
		t.Errorf("export audit entries: %v, want ann's invitation and acceptance in Alpha and her invitation to Beta", actions)
	}

	// Olga is Alpha's last Admin: refused, naming Alpha, nothing changed.
	before := a.eventCount(t)
	r := a.do(t, sys("DELETE", "/v1/accounts/"+olga.String()))
	var refusal struct {
		Code       string      `json:"code"`
		Workspaces []uuid.UUID `json:"workspaces"`
	}
	r.json(t, &refusal)
	if r.status != 409 || refusal.Code != "last_admin" || !slices.Equal(refusal.Workspaces, []uuid.UUID{wsA}) {
		t.Errorf("deleting the last Admin: %d %s, want 409 last_admin naming %s", r.status, r.body, wsA)
	}
	if after := a.eventCount(t); after != before {
		t.Errorf("%d events after a refused deletion, want %d", after, before)
	}

	if _, err := a.keys.Ensure(ctx, []uuid.UUID{ann}); err != nil {
		t.Fatal(err)
	}
	var del struct {
		UserID   uuid.UUID `json:"userId"`
		ErasedAt string    `json:"erasedAt"`
		Position string    `json:"position"`
	}
	a.must(t, 200, sys("DELETE", "/v1/accounts/"+ann.String())).json(t, &del)
	if del.UserID != ann || del.ErasedAt == "" || del.Position == "" {
		t.Fatalf("delete: %+v", del)
	}
	if _, err := a.keys.Ensure(ctx, []uuid.UUID{ann}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("ann's key after deletion: %v, want erased", err)
	}
	var again struct {
		UserID   uuid.UUID `json:"userId"`
		ErasedAt string    `json:"erasedAt"`
		Position string    `json:"position"`
	}
	a.must(t, 200, req{method: "DELETE", path: "/v1/accounts/" + ann.String(), token: systemToken, headers: consistent(del.Position)}).json(t, &again)
	if again != del {
		t.Errorf("again: %+v, want %+v", again, del)
	}

	after := func(method, path string) req {
		return req{method: method, path: path, token: systemToken, headers: consistent(del.Position)}
	}
	if r := a.do(t, after("GET", "/v1/accounts/"+ann.String()+"/export")); r.status != http.StatusGone || r.code() != "account_erased" {
		t.Errorf("export after deletion: %d %s, want 410 account_erased", r.status, r.body)
	}
	if r := a.do(t, after("GET", "/v1/accounts/lookup?email=ann@accounts.test")); r.status != 404 || r.code() != "account_not_found" {
		t.Errorf("lookup after deletion: %d %s, want 404 account_not_found", r.status, r.body)
	}
	if r := a.do(t, req{method: "GET", path: "/v1/workspaces/" + wsA.String() + "/users/" + ann.String(), token: userToken(olga), headers: consistent(del.Position)}); r.status != 404 {
		t.Errorf("ann in Alpha's list after deletion: %d %s, want 404", r.status, r.body)
	}
	if r := a.do(t, req{method: "GET", path: "/v1/workspaces/" + wsB.String() + "/users/" + ann.String(), token: userToken(bob), headers: consistent(del.Position)}); r.status != 404 {
		t.Errorf("ann's invitation in Beta's list after deletion: %d %s, want 404", r.status, r.body)
	}
	if r := a.do(t, after("DELETE", "/v1/accounts/"+uuid.NewString())); r.status != 404 || r.code() != "account_not_found" {
		t.Errorf("deleting an unknown id: %d %s, want 404 account_not_found", r.status, r.body)
	}
}
