package httpapi_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
)

// skewClock is the real clock moved forward by what a test adds, so that a
// temporary role's end comes without waiting for it.
type skewClock struct{ off atomic.Int64 }

func (c *skewClock) Now() time.Time {
	return time.Now().UTC().Add(time.Duration(c.off.Load())).Truncate(time.Microsecond)
}

func (c *skewClock) add(d time.Duration) { c.off.Add(int64(d)) }

// TestTemporaryRole: PUT role with until shows roleUntil; an end that is
// not in the future, or not a time, is a 400 about until; once the end
// passes and the expiry runs, the previous role is back, the row has no end,
// and the audit says so, with the system as actor.
func TestTemporaryRole(t *testing.T) {
	t.Parallel()
	clock := &skewClock{}
	var app commands.Application
	a := newAPIWithApp(t, func(d *commands.Deps, p *commands.InvitationPolicy) {
		d.Clock = clock
		app = commands.NewApplication(*d, *p, commands.Instrumentation{})
	}, nil)
	ws, _, adm := a.adminWorkspace(t, "Temp", "ada@temp.test")
	base := "/v1/workspaces/" + ws.String()
	bob, _ := a.join(t, ws, adm, "bob@temp.test", "Editor")
	role := base + "/users/" + bob.String() + "/role"

	for _, c := range []struct{ name, until string }{
		{"past", clock.Now().Add(-time.Hour).Format(time.RFC3339)},
		{"now-ish", clock.Now().Add(-time.Millisecond).Format(time.RFC3339Nano)},
		{"not a time", "next friday"},
		{"no zone", "2030-01-01T00:00:00"},
	} {
		r := a.do(t, req{method: "PUT", path: role, token: adm, body: map[string]string{"role": "Admin", "until": c.until}})
		if r.status != http.StatusBadRequest || r.code() != "invalid_input" || !fieldNamed(r, "until") {
			t.Errorf("until %s (%q): %d %s, want 400 invalid_input about until", c.name, c.until, r.status, r.body)
		}
	}
	before := a.workspaceEventCount(t)

	until := clock.Now().Add(48 * time.Hour).Truncate(time.Second)
	var changed struct {
		Role, Position string
	}
	a.must(t, 200, req{method: "PUT", path: role, token: adm, body: map[string]string{"role": "Admin", "until": until.Format(time.RFC3339)}}).json(t, &changed)
	if changed.Role != "Admin" {
		t.Fatalf("role change: %+v, want Admin", changed)
	}
	if n := a.workspaceEventCount(t); n != before+1 {
		t.Fatalf("the refused ends recorded %d events, want none (then one for the grant)", n-before-1)
	}
	row := tempRow(t, a, base, adm, bob, changed.Position)
	if row.Role != "Admin" || row.RoleUntil == nil || !row.RoleUntil.Equal(until) {
		t.Fatalf("row after the grant: role %s roleUntil %v, want Admin until %v", row.Role, row.RoleUntil, until)
	}

	// Before the end, the expiry changes nothing; after it, Editor is back.
	ctx := context.Background()
	if res, err := app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws}); err != nil || res.RoleGrants != 0 {
		t.Fatalf("expiry before the end: %+v %v, want nothing ended", res, err)
	}
	clock.add(48*time.Hour + time.Second)
	res, err := app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws})
	if err != nil || res.RoleGrants != 1 {
		t.Fatalf("expiry after the end: %+v %v, want one grant ended", res, err)
	}
	row = tempRow(t, a, base, adm, bob, res.Position.String())
	if row.Role != "Editor" || row.RoleUntil != nil {
		t.Fatalf("row after the end: role %s roleUntil %v, want Editor, null", row.Role, row.RoleUntil)
	}
	var perms struct{ Role string }
	a.must(t, 200, req{method: "GET", path: base + "/users/" + bob.String() + "/permissions", token: userToken(bob),
		headers: consistent(res.Position.String())}).json(t, &perms)
	if perms.Role != "Editor" {
		t.Fatalf("bob's permissions after the end: role %s, want Editor", perms.Role)
	}

	var audit struct {
		Items []struct {
			Action  string         `json:"action"`
			Actor   map[string]any `json:"actor"`
			Details map[string]any `json:"details"`
		} `json:"items"`
	}
	a.must(t, 200, req{method: "GET", path: base + "/audit?action=RoleGrantExpired", token: adm,
		headers: consistent(res.Position.String())}).json(t, &audit)
	if len(audit.Items) != 1 {
		t.Fatalf("audit RoleGrantExpired: %d entries, want 1", len(audit.Items))
	}
	e := audit.Items[0]
	if e.Details["fromRole"] != "Admin" || e.Details["toRole"] != "Editor" || e.Details["until"] == nil || e.Actor["system"] != true {
		t.Fatalf("audit entry: actor %v details %v, want the system, Admin → Editor with until", e.Actor, e.Details)
	}

	// A second run records nothing.
	again, err := app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws})
	if err != nil || again.RoleGrants != 0 {
		t.Fatalf("second expiry: %+v %v, want nothing", again, err)
	}
}

type tempUserRow struct {
	Role      string     `json:"role"`
	RoleUntil *time.Time `json:"roleUntil"`
}

// tempRow reads a row from the list and alone, which must agree.
func tempRow(t *testing.T, a *api, base, adm string, user uuid.UUID, pos string) tempUserRow {
	t.Helper()
	var one tempUserRow
	a.must(t, 200, req{method: "GET", path: base + "/users/" + user.String(), token: adm, headers: consistent(pos)}).json(t, &one)
	var list struct {
		Items []struct {
			UserID uuid.UUID `json:"userId"`
			tempUserRow
		} `json:"items"`
	}
	a.must(t, 200, req{method: "GET", path: base + "/users", token: adm}).json(t, &list)
	for _, r := range list.Items {
		if r.UserID == user {
			if r.Role != one.Role || (r.RoleUntil == nil) != (one.RoleUntil == nil) {
				t.Fatalf("list row %+v differs from the row %+v", r.tempUserRow, one)
			}
			return one
		}
	}
	t.Fatalf("user %s not in the list", user)
	return one
}
