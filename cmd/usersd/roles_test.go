package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// twoRoles is the environment of usersd on a test database with its two
// roles: DATABASE_URL the service's (pgtest.ServiceRole), and
// USERSD_MIGRATE_DATABASE_URL the owner's.
func twoRoles(t testing.TB) map[string]string {
	t.Helper()
	_, ownerURL := pgtest.New(t)
	_, svcURL := pgtest.Service(t, ownerURL)
	return map[string]string{"DATABASE_URL": svcURL, envMigrateDatabaseURL: ownerURL}
}

// TestServeAsTheServiceRole runs usersd serve as an operator would with a
// role made for it with LOGIN only (README, "Database roles"): the
// migrations, run as the owner, grant it what it needs, and the whole
// service works as that role: invitations, the mailbox, acceptance, the
// list, the audit and its verification. A rebuild is the owner's: refused
// to the service's role alone, run as the owner while serve goes on. The
// role owns nothing and cannot change an event.
func TestServeAsTheServiceRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	role := "usersd_test_svc_" + randomHex(t, 6)
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the database, so dropped after it (cleanups run
	// last-in first-out): the database holds the role's grants.
	t.Cleanup(func() {
		defer admin.Close(context.Background())
		if _, err := admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	_, ownerURL := pgtest.New(t)
	u, _ := url.Parse(ownerURL)
	u.User = url.User(role)
	svcURL := u.String()

	vars := map[string]string{"DATABASE_URL": svcURL, envMigrateDatabaseURL: ownerURL,
		"USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"}
	s := startServing(t, vars)
	defer func() {
		if res := s.stop(); t.Failed() {
			t.Logf("serve's log:\n%s", res.stderr)
		}
	}()
	c := &client{t: t, base: s.base}
	system := systemToken()

	var created struct {
		WorkspaceID, OwnerUserID uuid.UUID
		Position                 string
	}
	c.do("POST", "/v1/workspaces", system, "", `{"name":"Roles","owner":{"email":"o@roles.test","name":"O"}}`, 201, &created)
	ws := "/v1/workspaces/" + created.WorkspaceID.String()
	adminTok := userToken(created.OwnerUserID.String())

	invite := func(addr string) (position string) {
		var res struct {
			Results  []struct{ Outcome string }
			Position string
		}
		c.do("POST", ws+"/invitations", adminTok, "", `{"emails":["`+addr+`"],"role":"Editor"}`, 200, &res)
		if len(res.Results) != 1 || res.Results[0].Outcome != "invited" {
			t.Fatalf("invite %s: %+v", addr, res)
		}
		return res.Position
	}
	invite("new@roles.test")
	token := c.invitationToken(system, "new@roles.test")
	var accepted struct{ Position string }
	c.do("POST", "/v1/invitations/accept", "", "", `{"token":"`+token+`","name":"New"}`, 200, &accepted)

	var list struct {
		Items []struct{ Email, Status string }
	}
	c.do("GET", ws+"/users", adminTok, accepted.Position, "", 200, &list)
	if fmt.Sprint(list.Items) != "[{new@roles.test active} {o@roles.test active}]" {
		t.Errorf("the user list: %+v, want the new member active beside the owner", list.Items)
	}
	var entries struct{ Items []struct{ Action string } }
	c.do("GET", ws+"/audit", adminTok, accepted.Position, "", 200, &entries)
	if len(entries.Items) < 3 {
		t.Errorf("the audit: %+v, want the creation, the invitation and the acceptance at least", entries.Items)
	}
	c.verify(ws, adminTok)

	// A rebuild needs the owner: the service's role alone is refused...
	got := runUsersd(t, map[string]string{"DATABASE_URL": svcURL, envKeyEncryptionKey: testKEK}, "projections", "rebuild", "audit")
	if got.code != exitFailure || !strings.Contains(got.stderr, "run it as their owner") {
		t.Errorf("projections rebuild as the service's role: exit %d, stderr:\n%s\nwant 1 and a message to run it as the owner", got.code, got.stderr)
	}
	// ...the owner rebuilds while serve goes on, and serve keeps its rights.
	if got := runUsersd(t, map[string]string{"DATABASE_URL": svcURL, envMigrateDatabaseURL: ownerURL, envKeyEncryptionKey: testKEK}, "projections", "rebuild"); got.code != exitOK {
		t.Fatalf("projections rebuild with the owner's URL: exit %d, stderr:\n%s", got.code, got.stderr)
	}
	pos := invite("later@roles.test")
	var after struct{ Items []struct{ Email string } }
	c.do("GET", ws+"/users?status=invited", adminTok, pos, "", 200, &after)
	if len(after.Items) != 1 || after.Items[0].Email != "later@roles.test" {
		t.Errorf("invitations after the rebuild: %+v, want later@roles.test", after.Items)
	}
	c.verify(ws, adminTok)

	// serve's own role: it owns nothing, and an event cannot be changed.
	conn, err := pgx.Connect(ctx, svcURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var owned int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relowner = to_regrole(current_user))
		+ (SELECT count(*) FROM pg_proc WHERE proowner = to_regrole(current_user))`).Scan(&owned); err != nil || owned != 0 {
		t.Errorf("the service's role owns %d relations and functions (%v), want none", owned, err)
	}
	_, err = conn.Exec(ctx, `UPDATE events SET metadata = '{}'`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("UPDATE events as the service's role: %v, want it refused (42501)", err)
	}

	res := s.stop()
	if res.code != exitOK {
		t.Errorf("serve exited %d:\n%s", res.code, res.stderr)
	}
	if strings.Contains(res.stderr, "could change or remove events") {
		t.Errorf("serve warned that its role is privileged:\n%s", res.stderr)
	}
}

// TestServeWarnsOfAPrivilegedRole: usersd serve with one role that owns
// the tables (or is a superuser) works as before, and says once what that
// role could do.
func TestServeWarnsOfAPrivilegedRole(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t) // the owner, a superuser
	s := startServing(t, map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"})
	res := s.stop()
	if res.code != exitOK {
		t.Fatalf("serve exited %d:\n%s", res.code, res.stderr)
	}
	if n := strings.Count(res.stderr, "level=WARN msg=\"the service's database role is a superuser: it could change or remove events"); n != 1 {
		t.Errorf("warnings about the role: %d, want 1:\n%s", n, res.stderr)
	}
}

func TestMigrateDatabaseURLErrors(t *testing.T) {
	t.Parallel()
	svc := "postgres://svc@127.0.0.1:5432/usersd?sslmode=disable"
	for _, tt := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"without DATABASE_URL", map[string]string{envMigrateDatabaseURL: svc}, "USERSD_MIGRATE_DATABASE_URL is set but DATABASE_URL is not"},
		{"another database", map[string]string{"DATABASE_URL": svc, envMigrateDatabaseURL: "postgres://owner@127.0.0.1:5432/other"},
			`USERSD_MIGRATE_DATABASE_URL names database "other" and DATABASE_URL "usersd"`},
		{"not a URL", map[string]string{"DATABASE_URL": svc, envMigrateDatabaseURL: "postgres://owner:secret@127.0.0.1:x/usersd"},
			"USERSD_MIGRATE_DATABASE_URL is not a valid PostgreSQL connection URL"},
	} {
		got := runUsersd(t, tt.vars, "migrate")
		if got.code != exitUsage || !strings.Contains(got.stderr, tt.want) || strings.Contains(got.stderr, "secret") {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q, without the password", tt.name, got.code, got.stderr, exitUsage, tt.want)
		}
	}
}

// TestMigrateAsTheServiceRoleSaysWhom: migrations pending with only the
// service's role say to run them as the owner.
func TestMigrateAsTheServiceRoleSaysWhom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, ownerURL := pgtest.New(t)
	_, svcURL := pgtest.Service(t, ownerURL)
	// Make the last migration pending again.
	if _, err := owner.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	got := runUsersd(t, map[string]string{"DATABASE_URL": svcURL}, "migrate")
	if got.code != exitFailure || !strings.Contains(got.stderr, "may not change the schema: run usersd migrate as the owner, or set USERSD_MIGRATE_DATABASE_URL") {
		t.Errorf("migrate as the service's role with a migration pending: exit %d, stderr:\n%s", got.code, got.stderr)
	}
}

// client asks a running usersd serve.
type client struct {
	t    *testing.T
	base string
}

// do sends a request (with the bearer token and X-Consistent-With when not
// empty) and decodes the answer into out, failing unless it is status. A
// read that the read models are too slow for (504, on a loaded machine) is
// asked again, for up to 30 s.
func (c *client) do(method, path, token, consistentWith, body string, status int, out any) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !c.try(method, path, token, consistentWith, body, status, out, time.Now().Before(deadline)) {
	}
}

func (c *client) try(method, path, token, consistentWith, body string, status int, out any, again bool) bool {
	c.t.Helper()
	r, err := http.DefaultClient.Do(apiRequest(c.t, method, c.base+path, token, consistentWith, body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode == http.StatusGatewayTimeout && consistentWith != "" && again {
		return false
	}
	if r.StatusCode != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, r.StatusCode, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return true
}

var linkToken = regexp.MustCompile(`accept\?token=([A-Za-z0-9_-]+)`)

// invitationToken waits for the invitation e-mail to addr in the
// development mailbox and answers the token of its link.
func (c *client) invitationToken(system, addr string) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var box struct{ Items []struct{ To, Text string } }
		c.do("GET", "/v1/dev/mailbox", system, "", "", 200, &box)
		for _, m := range box.Items {
			if tok := linkToken.FindStringSubmatch(m.Text); tok != nil && m.To == addr {
				return tok[1]
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no invitation e-mail to %s after 30 s: %+v", addr, box.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *client) verify(ws, token string) {
	c.t.Helper()
	var v struct {
		OK      bool
		Entries int
	}
	c.do("GET", ws+"/audit/verify", token, "", "", 200, &v)
	if !v.OK || v.Entries == 0 {
		c.t.Errorf("audit verify: %+v, want ok", v)
	}
}
