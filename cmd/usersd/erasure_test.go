package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The person whose data a deletion must erase: an address and a name that
// appear nowhere else.
const (
	erasedAddress = "Erin.Erasure@scan.test"
	erasedName    = "Erinna Scanworth"
)

// TestDeletionErasesThePersonEverywhere is issue 16's end-to-end check: a
// person in three workspaces (two joined, one pending), with a role change,
// a login, a resent invitation and e-mails sent, is deleted through usersd
// serve; then no table of the database, read column by column as text, nor
// any event's bytes, nor serve's log, holds the address or the name (in any
// case), and every workspace's audit chain still verifies.
func TestDeletionErasesThePersonEverywhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vars := twoRoles(t)
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"] = testJWTSecret, "true"
	s := startServing(t, vars)
	stopped := false
	defer func() {
		if !stopped {
			if res := s.stop(); t.Failed() {
				t.Logf("serve's log:\n%s", res.stderr)
			}
		}
	}()
	c := &client{t: t, base: s.base}
	system := systemToken()

	type workspace struct {
		path, owner string // the owner's token
		id          uuid.UUID
	}
	var wss []workspace
	for i := range 3 {
		var created struct {
			WorkspaceID, OwnerUserID uuid.UUID
		}
		c.do("POST", "/v1/workspaces", system, "", fmt.Sprintf(`{"name":"Scan %d","owner":{"email":"owner%d@scan.test","name":"Owner %d"}}`, i, i, i), 201, &created)
		wss = append(wss, workspace{"/v1/workspaces/" + created.WorkspaceID.String(), testToken(jwt.MapClaims{"sub": created.OwnerUserID.String()}), created.WorkspaceID})
	}
	var erin uuid.UUID
	for _, ws := range wss {
		var res struct {
			Results []struct {
				Outcome string
				UserID  uuid.UUID
			}
		}
		c.do("POST", ws.path+"/invitations", ws.owner, "", `{"emails":["`+erasedAddress+`"],"role":"Editor"}`, 200, &res)
		if len(res.Results) != 1 || res.Results[0].Outcome != "invited" {
			t.Fatalf("invite: %+v", res)
		}
		erin = res.Results[0].UserID
	}
	// Erin joins the first two workspaces; the third invitation is resent
	// (a second e-mail) and stays pending.
	var pos string
	for _, ws := range wss[:2] {
		var accepted struct{ Position string }
		c.do("POST", "/v1/invitations/accept", "", "", `{"token":"`+c.tokenFor(system, ws.id)+`","name":"`+erasedName+`"}`, 200, &accepted)
		pos = accepted.Position
	}
	c.do("POST", wss[2].path+"/users/"+erin.String()+"/invitation/resend", wss[2].owner, "", "", 202, nil)
	var changed struct{ Position string }
	c.do("PUT", wss[0].path+"/users/"+erin.String()+"/role", wss[0].owner, pos, `{"role":"Manager"}`, 200, &changed)
	erinTok := testToken(jwt.MapClaims{"sub": erin.String()})
	c.do("POST", wss[0].path+"/logins", erinTok, changed.Position, "", 204, nil)
	c.waitForMail(system, wss[2].id, 2)

	var del struct {
		UserID   uuid.UUID
		ErasedAt string
		Position string
	}
	c.do("DELETE", "/v1/accounts/"+erin.String(), system, "", "", 200, &del)
	c.do("GET", "/v1/accounts/"+erin.String()+"/export", system, del.Position, "", 410, nil)
	for _, ws := range wss {
		c.do("GET", ws.path+"/users/"+erin.String(), ws.owner, del.Position, "", 404, nil)
		c.verify(ws.path, ws.owner)
	}

	owner, err := pgx.Connect(ctx, vars[envMigrateDatabaseURL])
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	// The outbox erases the mail in its own transaction, soon after.
	deadline := time.Now().Add(30 * time.Second)
	for {
		hits := scanDatabase(t, owner)
		if len(hits) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the person's data is still held after the deletion:\n%s", strings.Join(hits, "\n"))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	res := s.stop()
	stopped = true
	for _, needle := range []string{erasedAddress, erasedName} {
		if strings.Contains(strings.ToLower(res.stdout+res.stderr), strings.ToLower(needle)) {
			t.Errorf("serve's log holds %q", needle)
		}
	}
}

// tokenFor waits for the invitation e-mail of workspace ws in the
// development mailbox and answers its link's token.
func (c *client) tokenFor(system string, ws uuid.UUID) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var box struct {
			Items []struct {
				WorkspaceID uuid.UUID
				Text        string
			}
		}
		c.do("GET", "/v1/dev/mailbox", system, "", "", 200, &box)
		for _, m := range box.Items {
			if tok := linkToken.FindStringSubmatch(m.Text); tok != nil && m.WorkspaceID == ws {
				return tok[1]
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no invitation e-mail of workspace %s after 30 s", ws)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForMail waits until the mailbox holds n e-mails of workspace ws.
func (c *client) waitForMail(system string, ws uuid.UUID, n int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var box struct {
			Items []struct{ WorkspaceID uuid.UUID }
		}
		c.do("GET", "/v1/dev/mailbox", system, "", "", 200, &box)
		got := 0
		for _, m := range box.Items {
			if m.WorkspaceID == ws {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d e-mails of workspace %s after 30 s, want %d", got, ws, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scanDatabase reads every column of every table of every schema (but the
// catalogs) as text, bytea decoded as UTF-8 where it is, and answers where
// the erased address or name appear, case-insensitively: "table.column:
// n rows".
func scanDatabase(t *testing.T, db *pgx.Conn) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT c.table_schema, c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ schema, table, name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.schema, &c.table, &c.name, &c.typ)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 20 {
		t.Fatalf("found %d columns: the scan would prove nothing", len(cols))
	}
	var hits []string
	for _, c := range cols {
		col := pgx.Identifier{c.name}.Sanitize()
		text := col + "::text"
		if c.typ == "bytea" {
			// Sealed values are bytes; a value in clear would read as text.
			text = "encode(" + col + ", 'escape')"
		}
		var n int
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s ILIKE $1 OR %s ILIKE $2`,
			pgx.Identifier{c.schema, c.table}.Sanitize(), text, text)
		if err := db.QueryRow(ctx, q, "%"+erasedAddress+"%", "%"+erasedName+"%").Scan(&n); err != nil {
			t.Fatalf("scan %s.%s.%s: %v", c.schema, c.table, c.name, err)
		}
		if n > 0 {
			hits = append(hits, fmt.Sprintf("%s.%s.%s: %d rows", c.schema, c.table, c.name, n))
		}
	}
	return hits
}
