package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
)

type asOfRow struct {
	UserID    uuid.UUID  `json:"userId"`
	Role      string     `json:"role"`
	Status    string     `json:"status"`
	RoleUntil *time.Time `json:"roleUntil"`
}

type asOfPage struct {
	Items        []asOfRow `json:"items"`
	NextCursor   *string   `json:"nextCursor"`
	ActiveAdmins int       `json:"activeAdmins"`
}

// TestUsersAsOf: the list as of a write's position shows what it showed
// then (later changes not yet, the change at the position included), pages
// with a cursor of its own moment, and refuses a bad asOf or a cursor of
// another moment with 400 naming the parameter.
func TestUsersAsOf(t *testing.T) {
	t.Parallel()
	a, ws, owner, adm := newAdminWorkspace(t, "As of", "owner@asof.test")
	jane, joined := a.join(t, ws, adm, "jane@asof.test", "Editor")
	bob, _ := a.join(t, ws, adm, "bob@asof.test", "Monitor")
	var out struct{ Position string }
	a.must(t, 200, req{method: "PUT", path: "/v1/workspaces/" + ws.String() + "/users/" + jane.String() + "/role", token: adm, body: map[string]string{"role": "Admin"}}).json(t, &out)
	promoted := out.Position
	a.must(t, 200, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/users/" + jane.String() + "/suspend", token: adm}).json(t, &out)
	suspended := out.Position
	base := "/v1/workspaces/" + ws.String() + "/users"

	list := func(query string) asOfPage {
		t.Helper()
		var p asOfPage
		a.must(t, 200, req{method: "GET", path: base + "?" + query, token: adm, headers: consistent(suspended)}).json(t, &p)
		return p
	}
	byID := func(p asOfPage) map[uuid.UUID]asOfRow {
		m := map[uuid.UUID]asOfRow{}
		for _, r := range p.Items {
			m[r.UserID] = r
		}
		return m
	}
	then := byID(list("asOf=" + joined))
	if len(then) != 2 || then[jane].Role != "Editor" || then[jane].Status != "active" || then[owner].Role != "Admin" {
		t.Errorf("as of Jane's joining: %+v; want the owner and Jane, an active Editor", then)
	}
	p := list("asOf=" + promoted)
	if r := byID(p)[jane]; r.Role != "Admin" || r.Status != "active" || p.ActiveAdmins != 2 || len(p.Items) != 3 {
		t.Errorf("as of the promotion: %+v; want Jane an active Admin, 3 rows, 2 active Admins", p)
	}
	if r := byID(list("asOf=" + suspended))[jane]; r.Status != "suspended" {
		t.Errorf("as of the suspension: %+v; want suspended", r)
	}
	// An instant before the workspace: empty.
	if p := list("asOf=" + url.QueryEscape(time.Now().Add(-24*time.Hour).Format(time.RFC3339))); len(p.Items) != 0 {
		t.Errorf("as of yesterday: %+v; want no rows", p.Items)
	}
	// An instant now: the current list.
	now := list("asOf=" + url.QueryEscape(time.Now().Add(time.Minute).Format(time.RFC3339Nano)))
	if len(now.Items) != 3 || byID(now)[bob].Role != "Monitor" {
		t.Errorf("as of now: %+v", now.Items)
	}
	// Filters and paging.
	if p := list("asOf=" + promoted + "&role=admin"); len(p.Items) != 2 {
		t.Errorf("Admins as of the promotion: %+v; want 2", p.Items)
	}
	first := list("asOf=" + promoted + "&limit=2")
	if len(first.Items) != 2 || first.NextCursor == nil {
		t.Fatalf("first page: %+v", first)
	}
	second := list("asOf=" + promoted + "&limit=2&cursor=" + *first.NextCursor)
	if len(second.Items) != 1 || second.NextCursor != nil {
		t.Errorf("second page: %+v", second)
	}
	// A temporary role: its end as of the grant, none before.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	a.must(t, 200, req{method: "PUT", path: base + "/" + bob.String() + "/role", token: adm,
		body: map[string]string{"role": "Editor", "until": until.Format(time.RFC3339)}}).json(t, &out)
	granted := out.Position
	var g asOfPage
	a.must(t, 200, req{method: "GET", path: base + "?asOf=" + granted, token: adm, headers: consistent(granted)}).json(t, &g)
	if r := byID(g)[bob]; r.Role != "Editor" || r.RoleUntil == nil || !r.RoleUntil.Equal(until) {
		t.Errorf("as of the grant: %+v; want Bob an Editor until %s", r, until)
	}
	if r := byID(list("asOf=" + suspended))[bob]; r.Role != "Monitor" || r.RoleUntil != nil {
		t.Errorf("before the grant: %+v; want Bob a Monitor with no end", r)
	}
	for _, bad := range []string{"asOf=yesterday", "asOf=", "asOf=0-0", "asOf=12", "asOf=" + joined + "&limit=2&cursor=" + *first.NextCursor} {
		r := a.must(t, http.StatusBadRequest, req{method: "GET", path: base + "?" + bad, token: adm})
		if r.code() != "invalid_input" || (!fieldNamed(r, "asOf") && !fieldNamed(r, "cursor")) {
			t.Errorf("%s: %s; want invalid_input naming asOf or cursor", bad, r.body)
		}
	}
}

// TestMemberHistoryAPI: the person's intervals, oldest first, with who
// changed them; 404 for someone never in the list.
func TestMemberHistoryAPI(t *testing.T) {
	t.Parallel()
	a, ws, owner, adm := newAdminWorkspace(t, "History", "owner@history.test")
	jane, _ := a.join(t, ws, adm, "jane@history.test", "Editor")
	var out struct{ Position string }
	a.must(t, 200, req{method: "PUT", path: "/v1/workspaces/" + ws.String() + "/users/" + jane.String() + "/role", token: adm, body: map[string]string{"role": "Manager"}}).json(t, &out)
	var h struct {
		Items []struct {
			From      time.Time  `json:"from"`
			To        *time.Time `json:"to"`
			Role      string     `json:"role"`
			Status    string     `json:"status"`
			ChangedBy *uuid.UUID `json:"changedBy"`
			Action    string     `json:"action"`
			EventID   uuid.UUID  `json:"eventId"`
		} `json:"items"`
	}
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users/" + jane.String() + "/history", token: adm, headers: consistent(out.Position)}).json(t, &h)
	var got []string
	for _, it := range h.Items {
		got = append(got, it.Action+" "+it.Role+" "+it.Status)
	}
	want := []string{"UserInvited Editor invited", "InvitationAccepted Editor active", "RoleChanged Manager active"}
	if len(got) != len(want) {
		t.Fatalf("history %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("history %v; want %v", got, want)
		}
	}
	last := h.Items[len(h.Items)-1]
	if last.To != nil || last.ChangedBy == nil || *last.ChangedBy != owner || h.Items[0].To == nil || !h.Items[0].To.Equal(h.Items[1].From) {
		t.Errorf("history %+v: want the last open and changed by the owner, each ending where the next starts", h.Items)
	}
	r := a.must(t, 404, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users/" + uuid.NewString() + "/history", token: adm, headers: consistent(out.Position)})
	if r.code() != "user_not_found" {
		t.Errorf("unknown person: %s", r.body)
	}
}
