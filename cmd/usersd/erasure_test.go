package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections"
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
// any event's bytes (in either event store), nor the events' export, nor
// serve's log, holds the address or the name (in any case), and every
// workspace's audit chain still verifies. Rebuilding every projection after
// the erasure gives the same read models, and the address invited again
// makes a new account.
func TestDeletionErasesThePersonEverywhere(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		// use points serve at the event store and answers where a stored
		// event holds the address or the name (the PostgreSQL store's
		// events table is one the database scan reads).
		use func(t *testing.T, vars map[string]string) (scanEvents func() []string)
	}{
		{"postgres", func(*testing.T, map[string]string) func() []string { return func() []string { return nil } }},
		{"esdb", func(t *testing.T, vars map[string]string) func() []string {
			srv := esdbtest.Start(t)
			vars[envESDBURL] = srv.URL()
			return func() []string { return scanESDB(t, srv) }
		}},
	}
	for _, store := range stores {
		t.Run(store.name, func(t *testing.T) {
			t.Parallel()
			deletionErases(t, store.use)
		})
	}
}

func deletionErases(t *testing.T, use func(*testing.T, map[string]string) func() []string) {
	ctx := context.Background()
	vars := twoRoles(t)
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"] = testJWTSecret, "true"
	scanEvents := use(t, vars)
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
	// The first e-mail goes out before the resend: a resend that wins the
	// race leaves the first attempt's link dead, and the mailer then rightly
	// sends only one.
	c.waitForMail(system, wss[2].id, 1)
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

	if hits := scanEvents(); len(hits) > 0 {
		t.Errorf("stored events hold the person's data after the deletion:\n%s", strings.Join(hits, "\n"))
	}
	// The address is no account's any more.
	c.do("GET", "/v1/accounts/lookup?email="+url.QueryEscape(erasedAddress), system, del.Position, "", 404, nil)

	// The analytics export is of the events as stored: sealed, and the
	// seals of an erased person open for no one.
	exported := runUsersd(t, vars, "events", "export")
	if exported.code != exitOK || !strings.Contains(exported.stdout, erin.String()) || !strings.Contains(exported.stdout, pii.Prefix) {
		t.Fatalf("events export: exit %d, stderr %s; want the events about %s, sealed", exported.code, exported.stderr, erin)
	}
	for _, needle := range []string{erasedAddress, erasedName} {
		if strings.Contains(strings.ToLower(exported.stdout), strings.ToLower(needle)) {
			t.Errorf("the events' export holds %q", needle)
		}
	}

	// A rebuild reads the erased person's events with their values gone
	// and must come to the read models the live runners made.
	for _, ws := range wss {
		c.do("GET", ws.path+"/audit", ws.owner, del.Position, "", 200, nil)
	}
	before := readModels(t, owner)
	if got := runUsersd(t, vars, "projections", "rebuild"); got.code != exitOK {
		t.Fatalf("projections rebuild after the erasure: exit %d, stderr:\n%s", got.code, got.stderr)
	}
	after := readModels(t, owner)
	for table, rows := range before {
		if !slices.Equal(rows, after[table]) {
			t.Errorf("%s after the rebuild differs:\nbefore %q\nafter  %q", table, rows, after[table])
		}
	}
	if hits := scanDatabase(t, owner); len(hits) > 0 {
		t.Errorf("the rebuilt read models hold the person's data:\n%s", strings.Join(hits, "\n"))
	}
	for _, ws := range wss {
		c.verify(ws.path, ws.owner)
	}

	// Invited again, the address is a new person: a new account, which the
	// lookup answers.
	var again struct {
		Results []struct {
			Outcome string
			UserID  uuid.UUID
		}
		Position string
	}
	c.do("POST", wss[1].path+"/invitations", wss[1].owner, "", `{"emails":["`+erasedAddress+`"],"role":"Monitor"}`, 200, &again)
	if len(again.Results) != 1 || again.Results[0].Outcome != "invited" || again.Results[0].UserID == uuid.Nil || again.Results[0].UserID == erin {
		t.Fatalf("invite the erased address again: %+v, want a new account (the erased one was %s)", again.Results, erin)
	}
	var found struct{ UserID uuid.UUID }
	c.do("GET", "/v1/accounts/lookup?email="+url.QueryEscape(erasedAddress), system, again.Position, "", 200, &found)
	if found.UserID != again.Results[0].UserID {
		t.Errorf("lookup of the address invited again: %s, want the new account %s", found.UserID, again.Results[0].UserID)
	}

	res := s.stop()
	stopped = true
	for _, needle := range []string{erasedAddress, erasedName} {
		if strings.Contains(strings.ToLower(res.stdout+res.stderr), strings.ToLower(needle)) {
			t.Errorf("serve's log holds %q", needle)
		}
	}
}

// readModels reads every table of every projection, each row as text, in
// order: what a rebuild must make again.
func readModels(t *testing.T, db *pgx.Conn) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range allProjections() {
		for _, table := range p.Tables() {
			q := fmt.Sprintf("SELECT r::text FROM %s r ORDER BY 1", pgx.Identifier{projections.LiveSchema, table}.Sanitize())
			rows, err := db.Query(context.Background(), q)
			if err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			out[table] = texts
		}
	}
	for _, table := range []string{"userlist_users", "memberships", "memberships_accounts", "audit_entries"} {
		if len(out[table]) == 0 {
			t.Fatalf("%s is empty: comparing it would prove nothing", table)
		}
	}
	return out
}

// scanESDB reads every record of the EventStoreDB server's $all (system
// records too) and answers those whose stream, type, data or metadata hold
// the erased address or name, case-insensitively.
func scanESDB(t *testing.T, srv *esdbtest.Server) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := esdbtest.Client(t, srv.URL()).ReadAll(ctx, esdbclient.ReadAllOptions{From: esdbclient.Start{}}, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var hits []string
	n := 0
	for {
		r, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read $all: %v", err)
		}
		e := r.Event
		n++
		stored := strings.ToLower(e.StreamID + "\n" + e.EventType + "\n" + string(e.Data) + "\n" + string(e.UserMetadata))
		for _, needle := range []string{erasedAddress, erasedName} {
			if strings.Contains(stored, strings.ToLower(needle)) {
				hits = append(hits, fmt.Sprintf("%s@%d (%s) holds %q", e.StreamID, e.EventNumber, e.EventType, needle))
			}
		}
	}
	if n < 20 {
		t.Fatalf("read %d records of $all: the scan would prove nothing", n)
	}
	return hits
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

// waitForMail waits until the mailbox holds n e-mails of workspace ws. The
// bound is generous: under the race detector, with both stores' runs and
// every other package's tests sharing two cores, the resend's e-mail once
// took longer than 30 s.
func (c *client) waitForMail(system string, ws uuid.UUID, n int) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
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
			c.t.Fatalf("%d e-mails of workspace %s after 90 s, want %d", got, ws, n)
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
