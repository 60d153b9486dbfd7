package main

// Browser tests: headless Chromium, driven by chromedp, against the same
// composition `usersd serve` runs (serveOn), on a fresh database and a real
// listening server. Screenshots go to $USERSD_TEST_ARTIFACTS/<test name>/
// (default: the test's temporary directory).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/testlog"
)

// browserTimeout bounds one browser test: Chromium on a busy 2-core
// machine is slow to start.
const browserTimeout = 3 * time.Minute

// chromiumPath finds a Chromium: $USERSD_CHROMIUM, else the usual names.
func chromiumPath() string {
	if p := os.Getenv("USERSD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// service is a running usersd serve for one test.
type service struct {
	base      string // http://127.0.0.1:port
	adminLink string // the link serve printed
	stderr    *testlog.Buffer
}

// startService runs serveOn on a fresh database with the demo workspace,
// as the embedded default does, and waits until it is ready.
func startService(t *testing.T) *service {
	t.Helper()
	_, dbURL := pgtest.New(t)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := database{URL: dbURL, Source: envDatabaseURL, config: cfg}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	var stdout testlog.Buffer
	s := &service{base: base, stderr: &testlog.Buffer{}}
	vars := map[string]string{envJWTSecret: testJWTSecret, envDevMailbox: "true", envAuditSigningKey: testAuditKey, envKeyEncryptionKey: testKEK,
		envHTTPAddr: l.Addr().String(), envPublicURL: base}
	e := &env{Stdout: &stdout, Stderr: s.stderr, Getenv: func(k string) string { return vars[k] },
		Log: slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	scfg, err := readServeConfig(e, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	scfg.demo = true // as on the embedded default
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveOn(ctx, e, db, scfg, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop")
		}
		if t.Failed() {
			t.Logf("usersd log:\n%s", s.stderr.String())
		}
	})
	link := regexp.MustCompile(`http://\S+/#token=\S+`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := http.Get(base + "/readyz")
		if err == nil {
			r.Body.Close()
		}
		if s.adminLink = link.FindString(stdout.String()); err == nil && r.StatusCode == 200 && s.adminLink != "" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready (stdout %q)\n%s", stdout.String(), s.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.HasPrefix(s.adminLink, base+"/#token=") {
		t.Fatalf("printed link %q, want one on %s with the token in the fragment", s.adminLink, base)
	}
	return s
}

// browser is one headless Chromium tab for a test, with its screenshots
// and the script errors the page met.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	shots     int

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no chromium binary (install Debian's chromium, or set USERSD_CHROMIUM): skipping the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first call starts the browser, which lives as long as the context
	// of that call: no timeout on it.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	b := &browser{t: t, artifacts: artifactsDir(t)}
	err := chromedp.Listen(tab, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem(fmt.Sprintf("script error at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded:
			// Content-Security-Policy violations are reported here.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source == cdplog.EntrySourceSecurity {
				b.problem("security error: " + ev.Entry.Text)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelTimeout := context.WithTimeout(tab, browserTimeout)
	t.Cleanup(cancelTimeout)
	b.ctx = ctx
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("the page met a %s", p)
		}
	})
	return b
}

func (b *browser) problem(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, p)
}

// artifactsDir is where a test's screenshots go.
func artifactsDir(t *testing.T) string {
	root := os.Getenv("USERSD_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	// Screenshots of an earlier run would mix with this run's.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// run runs steps, failing the test with what was being done.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

// screenshot keeps the page as it looks now.
func (b *browser) screenshot(name string) {
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.shots++
	path := filepath.Join(b.artifacts, fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", path)
}

// value runs an action that answers a value.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(value(b, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

func (b *browser) evalString(js string) string {
	b.t.Helper()
	return value(b, js, chromedp.Evaluate[string](js))
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	return value(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// waitFor waits until the JavaScript condition holds.
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	value(b, what, chromedp.Poll[bool](js))
}

func row(email string) string { return fmt.Sprintf(`#user-rows tr[data-email=%q]`, email) }

const demoAdminEmail = demoOwnerEmail

// signIn opens the printed link and waits for the user list.
func (b *browser) signIn(s *service) {
	b.t.Helper()
	b.run("open the printed admin link",
		chromedp.Navigate(s.adminLink),
		chromedp.WaitVisible(chromedp.CSS(row(demoAdminEmail))))
	if loc := b.evalString("location.href"); strings.Contains(loc, "token=") {
		b.t.Errorf("the token stayed in the address bar: %s", loc)
	}
}

// signedIn is a browser signed in to a fresh service as its demo Admin.
func signedIn(t *testing.T) (*browser, *service) {
	t.Helper()
	b := newBrowser(t)
	s := startService(t)
	b.signIn(s)
	return b, s
}

// invite sends the invitation form and waits for each address's result.
func (b *browser) invite(role string, emails ...string) {
	b.t.Helper()
	actions := []chromedp.Action[chromedp.Void]{
		chromedp.SendKeys(chromedp.CSS("#invite-emails"), strings.Join(emails, ", ")),
		chromedp.SetValue(chromedp.CSS("#invite-role"), role),
		chromedp.Click(chromedp.CSS("#invite-send")),
	}
	for _, e := range emails {
		actions = append(actions, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#invite-results li[data-email=%q][data-outcome="invited"]`, e))))
	}
	b.run("invite "+strings.Join(emails, ", "), actions...)
}

func TestBrowserInviteChangeRoleAndAudit(t *testing.T) {
	t.Parallel()
	b, s := signedIn(t)
	b.screenshot("signed-in")

	// Invite two addresses; both are listed as invited at once (the page
	// reads with X-Consistent-With the invitation's position).
	b.invite("Monitor", "ada@example.com", "grace@example.com")
	for _, e := range []string{"ada@example.com", "grace@example.com"} {
		b.run("see "+e+" listed as invited", chromedp.WaitVisible(chromedp.CSS(row(e)+`[data-status="invited"][data-role="Monitor"]`)))
		if got := b.text(row(e) + " td.status"); got != "invited" {
			t.Errorf("%s: status cell %q, want invited", e, got)
		}
	}
	if got := b.text(row("ada@example.com") + " td.name"); got != "ada@example.com" {
		t.Errorf("name cell of an invitation: %q, want the e-mail address", got)
	}
	b.screenshot("invited")

	// Keyboard: ArrowDown on the row's menu button opens the menu on its
	// first item; Escape closes it and gives the focus back.
	kebab := row("ada@example.com") + " button.kebab"
	b.run("open the row menu by keyboard", chromedp.Focus(chromedp.CSS(kebab)), chromedp.KeyEvent(kb.ArrowDown))
	focused := b.evalString(`document.activeElement.dataset.action || ""`)
	if focused != "role:Admin" {
		t.Fatalf("after ArrowDown the focus is on %q, want the first item (role:Admin)", focused)
	}
	b.screenshot("row-menu")
	b.run("close the menu with Escape", chromedp.KeyEvent(kb.Escape))
	expanded := b.evalString(`document.activeElement.getAttribute("aria-expanded") + " " + document.activeElement.className`)
	if expanded != "false kebab" {
		t.Errorf("after Escape the focus is on %q, want the closed menu button (false kebab)", expanded)
	}

	// Change a role by keyboard: open, ArrowDown to Manager, Enter.
	b.run("change ada's role by keyboard",
		chromedp.Focus(chromedp.CSS(kebab)),
		chromedp.KeyEvent(kb.ArrowDown),
		chromedp.KeyEvent(kb.ArrowDown))
	focused = b.evalString(`document.activeElement.dataset.action || ""`)
	if focused != "role:Manager" {
		t.Fatalf("second item focused: %q, want role:Manager", focused)
	}
	b.run("pick Manager", chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(row("ada@example.com")+`[data-role="Manager"]`)))
	if got, want := b.text("#notice"), "ada@example.com is now Manager."; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}
	if got := b.evalString(`document.activeElement.closest("tr")?.dataset.email || ""`); got != "ada@example.com" {
		t.Errorf("after the change the focus is in the row of %q, want ada@example.com's", got)
	}

	// A refusal shows the API's explanation: the only Admin cannot be
	// suspended.
	b.run("suspend the only Admin",
		chromedp.Click(chromedp.CSS(row(demoAdminEmail)+" button.kebab")),
		chromedp.Click(chromedp.CSS(row(demoAdminEmail)+` [data-action="Suspend"]`)),
		chromedp.WaitVisible(chromedp.CSS("#notice.error")))
	if got := b.text("#notice"); !strings.Contains(got, "Admin") {
		t.Errorf("suspending the last Admin explains %q, want the reason", got)
	}
	b.screenshot("last-admin-refused")

	// And by mouse.
	b.run("change grace's role by mouse",
		chromedp.Click(chromedp.CSS(row("grace@example.com")+" button.kebab")),
		chromedp.Click(chromedp.CSS(row("grace@example.com")+` [data-action="role:Editor"]`)),
		chromedp.WaitVisible(chromedp.CSS(row("grace@example.com")+`[data-role="Editor"]`)))
	b.screenshot("roles-changed")

	// Filters: only invitations, then a search.
	b.run("filter by status",
		chromedp.SetValue(chromedp.CSS("#filter-status"), "invited"),
		chromedp.Click(chromedp.CSS("#filter-apply")),
		chromedp.WaitNotPresent(chromedp.CSS(row(demoAdminEmail))))
	if n := b.count("#user-rows tr[data-email]"); n != 2 {
		t.Errorf("status=invited lists %d rows, want 2", n)
	}
	b.run("search",
		chromedp.SendKeys(chromedp.CSS("#filter-q"), "grace"),
		chromedp.Click(chromedp.CSS("#filter-apply")),
		chromedp.WaitNotPresent(chromedp.CSS(row("ada@example.com"))))
	if n := b.count("#user-rows tr[data-email]"); n != 1 {
		t.Errorf("q=grace lists %d rows, want 1", n)
	}

	// The audit history shows the invitations and the role changes.
	b.run("open the audit page",
		chromedp.Navigate(s.base+"/audit"),
		chromedp.WaitVisible(chromedp.CSS(`#audit-rows tr[data-action="RoleChanged"]`)))
	for action, want := range map[string]int{"UserInvited": 2, "RoleChanged": 2, "WorkspaceCreated": 1} {
		if got := b.count(fmt.Sprintf(`#audit-rows tr[data-action=%q]`, action)); got != want {
			t.Errorf("audit page: %d %s entries, want %d", got, action, want)
		}
	}
	b.screenshot("audit")
	b.run("verify the chain",
		chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitVisible(chromedp.CSS("#audit-notice.ok")))
	// At least the 5 entries above; the e-mails' outcomes may have
	// joined them meanwhile.
	var entries int
	if got := b.text("#audit-notice"); !strings.HasPrefix(got, "The hash chain is intact: ") {
		t.Errorf("verify says %q, want the chain intact", got)
	} else if _, err := fmt.Sscanf(strings.TrimPrefix(got, "The hash chain is intact: "), "%d entries", &entries); err != nil || entries < 5 {
		t.Errorf("verify says %q, want at least 5 entries verified", got)
	}
	b.run("export CSV", chromedp.Click(chromedp.CSS("#export-csv")))
	b.waitFor("the export's notice", `document.getElementById("audit-notice").textContent.startsWith("Exported CSV")`)
	b.run("filter by action",
		chromedp.SetValue(chromedp.CSS("#audit-action"), "RoleChanged"),
		chromedp.Click(chromedp.CSS("#audit-apply")),
		chromedp.WaitNotPresent(chromedp.CSS(`#audit-rows tr[data-action="UserInvited"]`)))
	if got := b.count(`#audit-rows tr[data-action="RoleChanged"]`); got != 2 {
		t.Errorf("action=RoleChanged: %d entries, want 2", got)
	}
	b.screenshot("audit-filtered")

	// Revoking asks first, in a dialog.
	b.run("revoke grace's invitation",
		chromedp.Navigate(s.base+"/"),
		chromedp.Click(chromedp.CSS(row("grace@example.com")+" button.kebab")),
		chromedp.Click(chromedp.CSS(row("grace@example.com")+` [data-action="Revoke invitation"]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm")))
	b.screenshot("confirm-revoke")
	b.run("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")), chromedp.WaitNotPresent(chromedp.CSS(row("grace@example.com"))))
	if n := b.count(row("ada@example.com")); n != 1 {
		t.Errorf("after revoking grace's invitation ada's row is gone")
	}
}

func TestBrowserAcceptFromMailbox(t *testing.T) {
	t.Parallel()
	b, s := signedIn(t)
	b.invite("Editor", "linus@example.com")

	// The e-mail goes out asynchronously: refresh the mailbox until it is
	// there.
	b.run("open the mailbox", chromedp.Navigate(s.base+"/mailbox"), chromedp.WaitVisible(chromedp.CSS("#mail-refresh")))
	mail := `#mail-list article[data-to="linus@example.com"] a`
	deadline := time.Now().Add(60 * time.Second)
	for b.count(mail) == 0 {
		if time.Now().After(deadline) {
			b.screenshot("mailbox-empty")
			t.Fatalf("no e-mail to linus@example.com in the mailbox after 60 s")
		}
		b.run("refresh the mailbox", chromedp.Click(chromedp.CSS("#mail-refresh")), chromedp.Sleep(300*time.Millisecond))
	}
	b.screenshot("mailbox")
	href := value(b, "read the accept link", chromedp.AttributeValue(chromedp.CSS(mail), "href")).Value
	if !strings.HasPrefix(href, s.base+"/accept?token=") {
		t.Fatalf("link in the e-mail %q, want %s/accept?token=...", href, s.base)
	}
	b.run("follow the link", chromedp.Click(chromedp.CSS(mail)))
	b.accept(s, href, "linus@example.com", "Editor", "Linus Torvalds")
}

// TestBrowserAcceptPage opens an invitation's link as the e-mail would
// carry it (the token derived as the mailer derives it) and accepts it.
func TestBrowserAcceptPage(t *testing.T) {
	t.Parallel()
	b, s := signedIn(t)
	b.invite("Manager", "margaret@example.com")
	// Read as of the page's last write, as the page itself does.
	inv := s.invitationID(t, "margaret@example.com", b.evalString(`sessionStorage.getItem("usersd.position") || ""`))
	secrets := linkSecrets(commands.DeriveTokenKey([]byte(testJWTSecret)))
	href := s.base + "/accept?token=" + commands.InvitationLinkToken(secrets, demoWorkspaceID, inv, 1)

	b.run("a wrong token", chromedp.Navigate(s.base+"/accept?token=nonsense"), chromedp.WaitVisible(chromedp.CSS("#notice.error")))
	if got := b.text("#notice"); got == "" || strings.Contains(got, "nonsense") {
		t.Errorf("a wrong token's explanation: %q, want one that does not echo the token", got)
	}
	b.run("open the link", chromedp.Navigate(href))
	b.accept(s, href, "margaret@example.com", "Manager", "Margaret Hamilton")

	// Paging: 25 rows a page, the next page holds the rest.
	var many []string
	for i := range 25 {
		many = append(many, fmt.Sprintf("paging-%02d@example.com", i))
	}
	b.invite("AgentUser", many...)
	b.run("next page",
		chromedp.WaitEnabled(chromedp.CSS("#next-page")),
		chromedp.Click(chromedp.CSS("#next-page")),
		chromedp.WaitVisible(chromedp.CSS("#prev-page:enabled")))
	if got := b.count("#user-rows tr[data-email]"); got != 2 {
		t.Errorf("page 2 lists %d rows, want 2 (27 people, 25 a page)", got)
	}
	if got := b.text("#page-info"); got != "Page 2" {
		t.Errorf("page info %q, want Page 2", got)
	}
	b.run("previous page", chromedp.Click(chromedp.CSS("#prev-page")), chromedp.WaitVisible(chromedp.CSS("#prev-page:disabled")))
	if got := b.count("#user-rows tr[data-email]"); got != 25 {
		t.Errorf("page 1 lists %d rows, want 25", got)
	}

	// Signing out forgets the token; pasting one signs in again.
	b.run("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#token-input")))
	if n := b.count("#user-rows tr"); n != 0 {
		t.Errorf("signed out, the page still lists %d users", n)
	}
	b.run("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token-input"), "not.a.token"),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#token-input")))
	b.waitFor("the refusal's explanation", `document.getElementById("notice").textContent.includes("not valid")`)
	_, tok, _ := strings.Cut(s.adminLink, "#token=")
	b.run("sign in with a pasted token",
		chromedp.SendKeys(chromedp.CSS("#token-input"), tok),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(row("margaret@example.com"))))
}

// accept checks the accept page the browser is on, accepts the invitation
// under name, checks that the used link is refused, and that the Admin's
// list shows the new member.
func (b *browser) accept(s *service, href, email, role, name string) {
	t := b.t
	t.Helper()
	b.run("see the invitation", chromedp.WaitVisible(chromedp.CSS("#invitation")))
	for sel, want := range map[string]string{"#inv-email": email, "#inv-role": role, "#inv-workspace": "Demo workspace"} {
		if got := b.text(sel); got != want {
			t.Errorf("accept page %s: %q, want %q", sel, got, want)
		}
	}
	b.screenshot("accept")
	address := value(b, "read the address bar", chromedp.Location())
	if strings.Contains(address, "token=") {
		t.Errorf("address bar %q still holds the token, want it moved out of the history", address)
	}
	b.run("accept",
		chromedp.SendKeys(chromedp.CSS("#accept-name"), name),
		chromedp.Click(chromedp.CSS("#accept-submit")),
		chromedp.WaitVisible(chromedp.CSS("#welcome")))
	if got := b.text("#welcome-text"); !strings.Contains(got, "as "+role) {
		t.Errorf("after accepting: %q, want a welcome as %s", got, role)
	}
	b.screenshot("accepted")

	// The same link again: refused with the API's explanation.
	b.run("open the used link", chromedp.Navigate(href), chromedp.WaitVisible(chromedp.CSS("#notice.error")))
	if got := b.text("#notice"); !strings.Contains(got, "already been accepted") {
		t.Errorf("a used link explains %q, want that it has already been accepted", got)
	}
	b.screenshot("used-link")

	// The Admin's list shows the new member, active, under their name.
	b.run("back to the list", chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(row(email)+`[data-status="active"]`)))
	if got := b.text(row(email) + " td.name"); got != name {
		t.Errorf("name of the new member: %q, want %s", got, name)
	}
	b.screenshot("member-active")
}

// invitationID asks the API, as the demo Admin, for the pending invitation
// of email, reading at least as of position.
func (s *service) invitationID(t *testing.T, email, position string) uuid.UUID {
	t.Helper()
	_, tok, _ := strings.Cut(s.adminLink, "#token=")
	req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/workspaces/"+demoWorkspaceID.String()+"/users?status=invited&q="+url.QueryEscape(email), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Consistent-With", position)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var page struct {
		Items []struct {
			Email      string `json:"email"`
			Invitation struct {
				ID uuid.UUID `json:"id"`
			} `json:"invitation"`
		} `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&page); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("list invitations: %d %v", r.StatusCode, err)
	}
	for _, it := range page.Items {
		if it.Email == email {
			return it.Invitation.ID
		}
	}
	t.Fatalf("no pending invitation of %s", email)
	return uuid.Nil
}
