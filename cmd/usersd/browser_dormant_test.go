package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
)

// TestBrowserDormantAccess: on Users & Roles, "No login since" lists the
// members without a login since that day (never logged in included, not
// pending invitations), and the sort choice orders the list by last login
// (issue 17).
func TestBrowserDormantAccess(t *testing.T) {
	t.Parallel()
	b, s := signedIn(t)
	b.invite("Editor", "kim@example.com", "lee@example.com", "max@example.com", "pending@example.com")
	position := b.evalString(`sessionStorage.getItem("usersd.position") || ""`)
	secrets := linkSecrets(commands.DeriveTokenKey([]byte(testJWTSecret)))
	ids := map[string]uuid.UUID{}
	for _, e := range []string{"kim@example.com", "lee@example.com", "max@example.com"} {
		inv := s.invitationID(t, e, position)
		var out struct {
			UserID   uuid.UUID `json:"userId"`
			Position string    `json:"position"`
		}
		s.post(t, "/v1/invitations/accept", "", map[string]string{"token": commands.InvitationLinkToken(secrets, demoWorkspaceID, inv, 1), "name": e[:3]}, &out)
		ids[e], position = out.UserID, out.Position
	}
	// kim logs in, then lee; max never does.
	for _, e := range []string{"kim@example.com", "lee@example.com"} {
		position = s.post(t, "/v1/workspaces/"+demoWorkspaceID.String()+"/logins", systemToken(), map[string]string{"userId": ids[e].String()}, nil)
		time.Sleep(20 * time.Millisecond)
	}

	emails := func() []string {
		var out []string
		raw := b.evalString(`JSON.stringify([...document.querySelectorAll("#user-rows tr[data-email]")].map((tr) => tr.dataset.email))`)
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The page reads as of its last write: hand it the logins' position.
	value(b, "hand the page the position", chromedp.Evaluate[bool](`(sessionStorage.setItem("usersd.position", `+jsString(position)+`), true)`))
	b.run("reload with the logins",
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(row("max@example.com")+`[data-status="active"]`)))

	// Newest login first, never logged in last.
	b.run("sort by last login, newest first",
		chromedp.SetValue(chromedp.CSS("#filter-sort"), "-lastLoginAt"),
		chromedp.Click(chromedp.CSS("#filter-apply")))
	b.waitFor("lee first", `document.querySelector("#user-rows tr[data-email]")?.dataset.email === "lee@example.com"`)
	got := emails()
	if len(got) != 5 || !slices.Equal(got[:2], []string{"lee@example.com", "kim@example.com"}) {
		t.Errorf("newest first: %v, want lee, kim, then the three who never logged in (the Admin, max, the invitation)", got)
	}
	b.screenshot("sorted-newest-first")

	// No login since today (local midnight): the members who never logged
	// in, oldest first; the pending invitation is not a member.
	value(b, "set no login since today", chromedp.Evaluate[bool](`(() => { const d = new Date(), p = (n) => String(n).padStart(2, "0");
		document.getElementById("filter-inactive").value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()); return true; })()`))
	b.run("no login since today, oldest first",
		chromedp.SetValue(chromedp.CSS("#filter-sort"), "lastLoginAt"),
		chromedp.Click(chromedp.CSS("#filter-apply")))
	b.waitFor("the dormant members", `document.querySelectorAll("#user-rows tr[data-email]").length === 2`)
	got = emails()
	slices.Sort(got)
	if want := []string{demoAdminEmail, "max@example.com"}; !slices.Equal(got, want) {
		t.Errorf("no login since today: %v, want %v", got, want)
	}
	b.screenshot("no-login-since-today")
}

// post sends a JSON body (with the bearer token, if any) and answers the
// position the write returned (body or X-Position), decoding the answer
// into out if given.
func (s *service) post(t *testing.T, path, token string, body, out any) string {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode >= 300 {
		t.Fatalf("POST %s: %d", path, r.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(r.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
	return r.Header.Get("X-Position")
}

func jsString(s string) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}
