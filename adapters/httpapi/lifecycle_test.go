package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/httpapi"
)

type userRow struct {
	UserID      uuid.UUID `json:"userId"`
	Name        *string   `json:"name"`
	DisplayName string    `json:"displayName"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	Status      string    `json:"status"`
	LastLoginAt *string   `json:"lastLoginAt"`
	Invitation  *struct {
		ID          uuid.UUID `json:"id"`
		InvitedBy   uuid.UUID `json:"invitedBy"`
		ExpiresAt   string    `json:"expiresAt"`
		Expired     bool      `json:"expired"`
		EmailStatus string    `json:"emailStatus"`
	} `json:"invitation"`
}

type userList struct {
	Items        []userRow `json:"items"`
	NextCursor   *string   `json:"nextCursor"`
	ActiveAdmins int       `json:"activeAdmins"`
	SingleAdmin  bool      `json:"singleAdmin"`
}

func rowOf(l userList, email string) (userRow, bool) {
	for _, r := range l.Items {
		if r.Email == email {
			return r, true
		}
	}
	return userRow{}, false
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	a := newAPI(t)

	// The platform creates a workspace; its owner is an active Admin.
	ws, owner, pos := a.createWorkspace(t, "Acme", "owner@acme.test")
	adm := userToken(owner)
	base := "/v1/workspaces/" + ws.String()

	// A batch with mixed outcomes, as one string.
	results, pos := a.invite(t, ws, adm, "bob@acme.test, BOB@acme.test; not-an-address\ncarol@acme.test", "Editor")
	outcomes := map[string]string{}
	for _, r := range results {
		outcomes[r.Email] = r.Outcome
		if r.Outcome == "invalid" && r.Detail == "" {
			t.Errorf("invalid result for %q has no detail", r.Email)
		}
	}
	want := map[string]string{"bob@acme.test": "invited", "not-an-address": "invalid", "carol@acme.test": "invited"}
	if len(results) != 3 || !maps.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	// The array form; already invited and already a member.
	results, _ = a.invite(t, ws, adm, []string{"bob@acme.test", "owner@acme.test"}, "Editor")
	if results[0].Outcome != "already_invited" || results[1].Outcome != "already_member" {
		t.Fatalf("second batch: %+v, want already_invited, already_member", results)
	}

	// Lookup shows the invitation without using it.
	bobToken := a.links.latest(t, "bob@acme.test")
	var look struct{ WorkspaceName, Email, Role, ExpiresAt string }
	a.must(t, 200, req{method: "POST", path: "/v1/invitations/lookup", body: map[string]string{"token": bobToken}}).json(t, &look)
	if look.WorkspaceName != "Acme" || look.Email != "bob@acme.test" || look.Role != "Editor" || look.ExpiresAt == "" {
		t.Fatalf("lookup: %+v", look)
	}

	// Bob accepts; the list read with his position shows it at once.
	bob, pos := a.accept(t, bobToken, "Bob")
	if r := a.do(t, req{method: "POST", path: "/v1/invitations/accept", body: map[string]string{"token": bobToken, "name": "Bob"}}); r.status != 410 || r.code() != "invitation_used" {
		t.Fatalf("second accept: %d %s, want 410 invitation_used", r.status, r.body)
	}
	var list userList
	a.must(t, 200, req{method: "GET", path: base + "/users", token: adm, headers: consistent(pos)}).json(t, &list)
	if r, ok := rowOf(list, "bob@acme.test"); !ok || r.Status != "active" || r.Name == nil || *r.Name != "Bob" || r.UserID != bob {
		t.Fatalf("bob after accepting: %+v (found %v)", r, ok)
	}
	if r, ok := rowOf(list, "carol@acme.test"); !ok || r.Status != "invited" || r.Invitation == nil || r.Invitation.EmailStatus != "pending" || r.Name != nil || r.DisplayName != "carol@acme.test" {
		t.Fatalf("carol: %+v (found %v)", r, ok)
	}
	if !list.SingleAdmin || list.ActiveAdmins != 1 {
		t.Errorf("singleAdmin %v activeAdmins %d, want true 1", list.SingleAdmin, list.ActiveAdmins)
	}
	var one userRow
	a.must(t, 200, req{method: "GET", path: base + "/users/" + bob.String(), token: adm}).json(t, &one)
	if one.Email != "bob@acme.test" {
		t.Errorf("GET user: %+v", one)
	}
	// Filters, and a filter that is not one.
	a.must(t, 200, req{method: "GET", path: base + "/users?status=invited&role=editor&q=car", token: adm}).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].Email != "carol@acme.test" {
		t.Errorf("filtered list: %+v", list.Items)
	}
	if r := a.do(t, req{method: "GET", path: base + "/users?status=gone", token: adm}); r.status != 400 || !bytes.Contains(r.body, []byte(`"field":"status"`)) {
		t.Errorf("bad status filter: %d %s", r.status, r.body)
	}

	// Role change, seen by Bob's permissions on his next read.
	var changed struct{ UserID, Role, Position string }
	a.must(t, 200, req{method: "PUT", path: base + "/users/" + bob.String() + "/role", token: adm, body: map[string]string{"role": "manager"}}).json(t, &changed)
	if changed.Role != "Manager" || changed.Position == "" {
		t.Fatalf("role change: %+v", changed)
	}
	var perms struct {
		Role, Status string
		Permissions  []string
	}
	bobTok := userToken(bob)
	a.must(t, 200, req{method: "GET", path: base + "/users/" + bob.String() + "/permissions", token: bobTok, headers: consistent(changed.Position)}).json(t, &perms)
	if perms.Role != "Manager" || perms.Status != "active" || !slices.Contains(perms.Permissions, "users.invite") {
		t.Fatalf("bob's permissions: %+v", perms)
	}

	// Suspend blocks Bob's reads; reactivate gives them back.
	var p struct{ Position string }
	a.must(t, 200, req{method: "POST", path: base + "/users/" + bob.String() + "/suspend", token: adm}).json(t, &p)
	if r := a.do(t, req{method: "GET", path: base + "/users", token: bobTok, headers: consistent(p.Position)}); r.status != 403 || r.code() != "member_suspended" {
		t.Fatalf("suspended bob lists users: %d %s", r.status, r.body)
	}
	a.must(t, 200, req{method: "GET", path: base + "/users/" + bob.String() + "/permissions", token: bobTok}).json(t, &perms)
	if perms.Status != "suspended" || len(perms.Permissions) != 0 {
		t.Errorf("suspended bob's permissions: %+v", perms)
	}
	a.must(t, 200, req{method: "POST", path: base + "/users/" + bob.String() + "/reactivate", token: adm}).json(t, &p)
	a.must(t, 200, req{method: "GET", path: base + "/users", token: bobTok, headers: consistent(p.Position)})

	// The last active Admin can be neither demoted, suspended nor removed.
	for _, rq := range []req{
		{method: "PUT", path: base + "/users/" + owner.String() + "/role", body: map[string]string{"role": "Editor"}},
		{method: "POST", path: base + "/users/" + owner.String() + "/suspend"},
		{method: "DELETE", path: base + "/users/" + owner.String()},
	} {
		rq.token = adm
		if r := a.do(t, rq); r.status != 409 || r.code() != "last_admin" {
			t.Errorf("%s %s: %d %s, want 409 last_admin", rq.method, rq.path, r.status, r.body)
		}
	}

	// Resend: 202, the old link is dead (410), the new one works.
	carolOld := a.links.latest(t, "carol@acme.test")
	a.must(t, 200, req{method: "GET", path: base + "/users?status=invited", token: adm}).json(t, &list)
	carol := list.Items[0].UserID
	var resent struct{ InvitationID, Position string }
	a.must(t, 202, req{method: "POST", path: base + "/users/" + carol.String() + "/invitation/resend", token: bobTok}).json(t, &resent)
	carolNew := a.links.latest(t, "carol@acme.test")
	if carolNew == carolOld {
		t.Fatal("resend did not send a new link")
	}
	if r := a.do(t, req{method: "POST", path: "/v1/invitations/lookup", body: map[string]string{"token": carolOld}}); r.status != 410 || r.code() != "invitation_revoked" {
		t.Errorf("old link after resend: %d %s, want 410 invitation_revoked", r.status, r.body)
	}
	a.must(t, 200, req{method: "POST", path: "/v1/invitations/lookup", body: map[string]string{"token": carolNew}})
	// Revoking (DELETE of a pending invitation, by a Manager) kills it.
	a.must(t, 200, req{method: "DELETE", path: base + "/users/" + carol.String(), token: bobTok})
	if r := a.do(t, req{method: "POST", path: "/v1/invitations/accept", body: map[string]string{"token": carolNew, "name": "Carol"}}); r.status != 410 || r.code() != "invitation_revoked" {
		t.Errorf("revoked link: %d %s, want 410 invitation_revoked", r.status, r.body)
	}
	if r := a.do(t, req{method: "POST", path: "/v1/invitations/accept", body: map[string]string{"token": "garbage", "name": "Carol"}}); r.status != 400 || r.code() != "invalid_token" {
		t.Errorf("garbage token: %d %s, want 400 invalid_token", r.status, r.body)
	}

	// Logins: Bob's own, and the owner's reported by the platform.
	r := a.must(t, 204, req{method: "POST", path: base + "/logins", token: bobTok})
	a.must(t, 204, req{method: "POST", path: base + "/logins", token: systemToken, body: map[string]string{"userId": owner.String()}})
	a.must(t, 200, req{method: "GET", path: base + "/users/" + bob.String(), token: adm, headers: consistent(r.header.Get("X-Position"))}).json(t, &one)
	if one.LastLoginAt == nil {
		t.Errorf("bob's last login is not shown: %+v", one)
	}

	// Bob's workspaces.
	var mine []struct{ WorkspaceID, Name, Role, Status string }
	a.must(t, 200, req{method: "GET", path: "/v1/me/workspaces", token: bobTok}).json(t, &mine)
	if len(mine) != 1 || mine[0].WorkspaceID != ws.String() || mine[0].Name != "Acme" || mine[0].Role != "Manager" || mine[0].Status != "active" {
		t.Errorf("bob's workspaces: %+v", mine)
	}

	// Settings: with managersMayGrantAdmin off, Bob (Manager) may not
	// invite an Admin.
	a.must(t, 200, req{method: "PUT", path: base + "/settings", token: adm, body: map[string]bool{"managersMayGrantAdmin": false}}).json(t, &p)
	if r := a.do(t, req{method: "POST", path: base + "/invitations", token: bobTok, body: map[string]any{"emails": "dave@acme.test", "role": "Admin"}}); r.status != 403 || r.code() != "not_allowed" {
		t.Errorf("manager invites an admin with the setting off: %d %s", r.status, r.body)
	}

	// Audit: JSON page, NDJSON and CSV exports, verify.
	var page struct {
		Items []struct {
			Seq           int64
			Action        string
			CorrelationID *string
			Details       map[string]any
			Request       *struct{ IP, UserAgent string }
		}
	}
	roleAnswer := a.must(t, 200, req{method: "PUT", path: base + "/users/" + bob.String() + "/role", token: adm, body: map[string]string{"role": "Editor"},
		headers: map[string]string{"User-Agent": "lifecycle-test/1.0"}})
	roleAnswer.json(t, &p)
	reqID := roleAnswer.header.Get("X-Request-Id")
	a.must(t, 200, req{method: "GET", path: base + "/audit?action=RoleChanged", token: adm, headers: consistent(p.Position)}).json(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("RoleChanged entries: %d, want 2", len(page.Items))
	}
	top := page.Items[0]
	if top.Details["fromRole"] != "Manager" || top.Details["toRole"] != "Editor" || top.CorrelationID == nil || *top.CorrelationID != reqID ||
		top.Request == nil || top.Request.IP != "127.0.0.1" || top.Request.UserAgent != "lifecycle-test/1.0" {
		t.Errorf("newest RoleChanged entry: %+v", top)
	}
	var all struct{ Items []json.RawMessage }
	a.must(t, 200, req{method: "GET", path: base + "/audit?limit=500", token: adm}).json(t, &all)

	nd := a.must(t, 200, req{method: "GET", path: base + "/audit", token: adm, headers: map[string]string{"Accept": "application/x-ndjson"}})
	if ct := nd.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("NDJSON content type %q", ct)
	}
	lines := 0
	checkpoint := false
	sc := bufio.NewScanner(bytes.NewReader(nd.body))
	for sc.Scan() {
		var e struct {
			Type string
			Seq  int64
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || checkpoint {
			t.Fatalf("NDJSON line %d: %s (%v)", lines+1, sc.Bytes(), err)
		}
		if e.Type == "checkpoint" { // the last line: the signed head
			checkpoint = e.Seq == int64(lines)
			if !checkpoint {
				t.Fatalf("NDJSON checkpoint over seq %d after %d entries", e.Seq, lines)
			}
			continue
		}
		if e.Seq != int64(lines+1) {
			t.Fatalf("NDJSON line %d: %s", lines+1, sc.Bytes())
		}
		lines++
	}
	if !checkpoint {
		t.Error("NDJSON export without its checkpoint line")
	}
	if lines != len(all.Items) || lines < 10 {
		t.Errorf("NDJSON has %d lines, the JSON list %d entries", lines, len(all.Items))
	}
	cs := a.must(t, 200, req{method: "GET", path: base + "/audit", token: adm, headers: map[string]string{"Accept": "text/csv"}})
	records, err := csv.NewReader(bytes.NewReader(cs.body)).ReadAll()
	if err != nil || len(records) != lines+1 {
		t.Errorf("CSV: %d records (%v), want %d and a header", len(records), err, lines)
	}
	var verify struct {
		OK      bool
		Entries int
	}
	a.must(t, 200, req{method: "GET", path: base + "/audit/verify", token: adm}).json(t, &verify)
	if !verify.OK || verify.Entries != lines {
		t.Errorf("verify: %+v, want ok with %d entries", verify, lines)
	}

	// Removal: Bob's access goes; his next read answers 404.
	a.must(t, 200, req{method: "DELETE", path: base + "/users/" + bob.String(), token: adm}).json(t, &p)
	if r := a.do(t, req{method: "GET", path: base + "/users", token: bobTok, headers: consistent(p.Position)}); r.status != 404 || r.code() != "workspace_not_found" {
		t.Errorf("removed bob: %d %s, want 404 workspace_not_found", r.status, r.body)
	}

	// The access log names routes, never addresses or tokens.
	logs := a.logs.String()
	for _, secret := range []string{"bob@acme.test", "carol@acme.test", bobToken, carolNew, bobTok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if !strings.Contains(logs, `"route":"/v1/workspaces/{ws}/users/{userId}/role"`) {
		t.Errorf("the access log does not name route templates:\n%s", logs[:min(len(logs), 2000)])
	}
}

func TestConsistencyHeaderAndOps(t *testing.T) {
	t.Parallel()
	// A short wait: this test waits for a position that never comes.
	a := newAPIWith(t, func(c *httpapi.Config) { c.ConsistencyTimeout = time.Second })
	ws, _, adm := a.adminWorkspace(t, "Ops", "owner@ops.test")
	base := "/v1/workspaces/" + ws.String()
	if r := a.do(t, req{method: "GET", path: base + "/users", token: adm, headers: consistent("not-a-position")}); r.status != 400 || r.code() != "invalid_input" {
		t.Errorf("bad X-Consistent-With: %d %s", r.status, r.body)
	}
	if r := a.do(t, req{method: "GET", path: base + "/users", token: adm, headers: consistent("999999999999-1")}); r.status != 504 || r.code() != "projection_lag" {
		t.Errorf("unreachable position: %d %s, want 504 projection_lag", r.status, r.body)
	}
	a.must(t, 200, req{method: "GET", path: "/healthz"})
	a.must(t, 200, req{method: "GET", path: "/readyz"})
	a.must(t, 200, req{method: "GET", path: "/metrics"})
	if r := a.do(t, req{method: "GET", path: "/v1/nothing"}); r.status != 404 || r.code() != "not_found" || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
	if r := a.do(t, req{method: "PATCH", path: base + "/users", token: adm}); r.status != 405 || r.code() != "method_not_allowed" {
		t.Errorf("wrong method: %d %s", r.status, r.body)
	}
	// A client that is no trusted proxy gets an id of ours
	// (TestRequestIDComesFromTrustedProxiesOnly).
	r := a.do(t, req{method: "GET", path: "/healthz", headers: map[string]string{"X-Request-Id": "abc-123"}})
	if got := r.header.Get("X-Request-Id"); got == "" || got == "abc-123" {
		t.Errorf("X-Request-Id %q, want a new one", got)
	}
}
