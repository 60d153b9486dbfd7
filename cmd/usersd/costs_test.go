package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections/projectionstest"
)

// envCosts turns TestOperationCosts on: how many operations of each kind.
const envCosts = "USERSD_SCALE_COSTS"

// costClients is how many clients send each kind of operation at once.
const costClients = 8

// costParts groups the tables the service writes into the parts of the
// capacity model (docs/scaling.md). dev_mailbox is the development
// mailbox, which stands in for the SMTP server here: not a production
// cost, reported apart.
var costParts = map[string]string{
	"events":                 "event store",
	"account_keys":           "key store",
	"server_keys":            "key store",
	"userlist_users":         "read model userlist",
	"userlist_logins":        "read model userlist",
	"userlist_workspaces":    "read model userlist",
	"memberships":            "read model memberships",
	"memberships_workspaces": "read model memberships",
	"memberships_accounts":   "read model memberships",
	"audit_entries":          "read model audit",
	"audit_user_emails":      "read model audit",
	"membership_intervals":   "read model history",
	"history_workspaces":     "read model history",
	"projection_checkpoints": "checkpoints",
	"mail_deliveries":        "outbox and mailer",
	"dev_mailbox":            "development mailbox (SMTP stand-in)",
}

// costPart answers the part a table belongs to: the outbox's and the
// mailer's queues are watermill_* tables, the rest as costParts says.
func costPart(table string) (string, bool) {
	if strings.HasPrefix(table, "watermill_") {
		return "outbox and mailer", true
	}
	p, ok := costParts[table]
	return p, ok
}

// TestOperationCosts measures what each kind of operation costs the whole
// service: `usersd serve` (API, the four read models, the e-mail process
// manager and mailer, into the development mailbox) on a fresh database,
// driven over HTTP by 8 clients, one phase per kind of operation: N
// invitations of one new address each (until every e-mail's outcome is
// recorded and projected), N acceptances, N role changes, N logins
// (system-reported), N = USERSD_SCALE_COSTS. Each phase is one WAL window
// (projectionstest.StartWAL: transactions, rows and WAL bytes of this
// database, exactly, by part), closed when every projection has caught up
// with the last event; beside it the CPU time of this process (serve and
// the clients) and of the database's backends. Skipped unless
// USERSD_SCALE_COSTS is set; `make scale` runs it. It logs COST lines,
// judged against nothing: docs/scaling.md builds its model on them.
func TestOperationCosts(t *testing.T) {
	n := testenv.PositiveInt(t, envCosts, 0)
	if n == 0 {
		t.Skipf("set %s (e.g. 200) to measure the cost of each operation (make scale)", envCosts)
	}
	ctx := context.Background()
	vars := twoRoles(t)
	ownerURL := vars[envMigrateDatabaseURL]
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"] = testJWTSecret, "true"
	vars["USERSD_TRUSTED_PROXIES"] = "127.0.0.1/32"
	srv := startServing(t, vars)
	defer srv.stop()
	c := &client{t: t, base: srv.base}
	db, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)

	system := systemToken()
	var created struct{ WorkspaceID, OwnerUserID, Position string }
	c.do("POST", "/v1/workspaces", system, "", `{"name":"Costs","owner":{"email":"owner@costs.test","name":"Owner"}}`, 201, &created)
	ws := "/v1/workspaces/" + created.WorkspaceID
	owner := userToken(created.OwnerUserID)
	settle(t, ctx, db, 0)

	addrs := make([]string, n)
	users := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("person%d@costs.test", i)
	}
	t.Logf("COST machine: load average before %s; %d operations of each kind from %d clients", projectionstest.LoadAverage(), n, costClients)

	phase(t, ctx, db, ownerURL, "invitation (one new address, e-mail sent and recorded)", n, func(i int) {
		var res struct {
			Results []struct{ Outcome, UserID string }
		}
		c.do("POST", ws+"/invitations", owner, "", `{"emails":["`+addrs[i]+`"],"role":"Editor"}`, 200, &res)
		if len(res.Results) != 1 || res.Results[0].Outcome != "invited" {
			t.Fatalf("invite %s: %+v", addrs[i], res)
		}
		users[i] = res.Results[0].UserID
	}, func() { settle(t, ctx, db, n) })

	// The links, from the development mailbox's table (its page of the
	// API holds at most 500).
	tokens := make([]string, n)
	for i, a := range addrs {
		var text string
		if err := db.QueryRow(ctx, "SELECT text_body FROM dev_mailbox WHERE to_address = $1", a).Scan(&text); err != nil {
			t.Fatalf("the invitation e-mail to %s: %v", a, err)
		}
		m := linkToken.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no link in the e-mail to %s", a)
		}
		tokens[i] = m[1]
	}
	settle(t, ctx, db, n)
	phase(t, ctx, db, ownerURL, "acceptance", n, func(i int) {
		// Each invitee from an address of their own, as through a proxy:
		// the token endpoints are rate-limited per address.
		rq := apiRequest(t, "POST", srv.base+"/v1/invitations/accept", "", "", `{"token":"`+tokens[i]+`","name":"Person `+strconv.Itoa(i)+`"}`)
		rq.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250))
		r, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Error(err)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("accept %d: %d %s", i, r.StatusCode, body)
		}
	}, func() { settle(t, ctx, db, n) })

	phase(t, ctx, db, ownerURL, "role change", n, func(i int) {
		c.do("PUT", ws+"/users/"+users[i]+"/role", owner, "", `{"role":"Manager"}`, 200, nil)
	}, func() { settle(t, ctx, db, n) })

	phase(t, ctx, db, ownerURL, "login (system-reported)", n, func(i int) {
		c.do("POST", ws+"/logins", system, "", `{"userId":"`+users[i]+`"}`, 204, nil)
	}, func() { settle(t, ctx, db, n) })
	t.Logf("COST load average after %s", projectionstest.LoadAverage())
}

// phase runs op n times from costClients clients inside a WAL window,
// waits with quiet until the service has done all it does for them, and
// logs the costs per operation.
func phase(t *testing.T, ctx context.Context, db *pgx.Conn, url, what string, n int, op func(i int), quiet func()) {
	t.Helper()
	var before, after int64
	var events int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&before); err != nil {
		t.Fatal(err)
	}
	cpu0, pg0 := processCPU(), backendCPU(t, ctx, db)
	w := projectionstest.StartWAL(t, url)
	start := time.Now()
	// One goroutine per operation, costClients at a time: an operation
	// that fails the test (t.Fatal ends only its goroutine) still frees
	// its place.
	var wg sync.WaitGroup
	sem := make(chan struct{}, costClients)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			op(i)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sent := time.Since(start)
	quiet()
	cost, err := w.Stop(ctx)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	pg := cpuSince(pg0, backendCPU(t, ctx, db))
	if err := db.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&after); err != nil {
		t.Fatal(err)
	}
	events = after - before
	per := func(v int64) float64 { return float64(v) / float64(n) }
	t.Logf("COST %s: %d in %.2f s (sent in %.2f s, %.0f/s): per operation %.2f events, %.2f transactions, %.2f rows inserted, %.2f updated (%.2f HOT), %.2f deleted, %.0f B of WAL (%.0f B full-page images); CPU per operation %.0f µs in usersd and its clients, %.0f µs in PostgreSQL's backends of the database (%d aborted, %d open)",
		what, n, elapsed.Seconds(), sent.Seconds(), float64(n)/sent.Seconds(), per(events),
		per(int64(cost.Commits)), per(int64(cost.Inserted)), per(int64(cost.Updated)), per(int64(cost.HOT)), per(int64(cost.Deleted)),
		per(cost.Bytes), per(cost.FPIBytes), float64(cpu.Microseconds())/float64(n), float64(pg.Microseconds())/float64(n), cost.Aborts, cost.Open)
	parts := map[string]string{}
	for name := range cost.Tables {
		if p, ok := costPart(name); ok {
			parts[name] = p
		}
	}
	for _, p := range cost.ByPart(parts) {
		t.Logf("COST %s, part %s: per operation %.2f transactions, %.2f rows inserted, %.2f updated, %.2f deleted, %.0f B of WAL (%.0f B full-page images); tables %s",
			what, p.Part, per(int64(p.Commits)), per(int64(p.Inserted)), per(int64(p.Updated)), per(int64(p.Deleted)), per(p.Bytes), per(p.FPIBytes), strings.Join(p.Tables, " "))
	}
	// Per table, for the per-projection-event costs of the model.
	names := make([]string, 0, len(cost.Tables))
	for name := range cost.Tables {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		tc := cost.Tables[name]
		t.Logf("COST %s, table %s: %d transactions, %d inserted, %d updated, %d deleted, %d B of WAL", what, name, tc.Commits, tc.Inserted, tc.Updated, tc.Deleted, tc.Bytes)
	}
}

// settle waits until every projection's checkpoint has reached the last
// event and at least outcomes e-mail outcomes are recorded, then until
// the mailer's deliveries are all settled (up to 60 s).
func settle(t *testing.T, ctx context.Context, db *pgx.Conn, outcomes int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var behind, sent int
		err := db.QueryRow(ctx, `
			WITH head AS (SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1)
			SELECT (SELECT count(*) FROM projection_checkpoints c, head h
			         WHERE (c.commit_position, c.prepare_position) < (h.tx_id, h.position)),
			       (SELECT count(*) FROM events WHERE type IN ('InvitationEmailSent', 'InvitationEmailFailed'))`).Scan(&behind, &sent)
		if err != nil {
			t.Fatal(err)
		}
		if behind == 0 && sent >= outcomes {
			// A runner's checkpoint moves in its batch's transaction; the
			// mailer's outcome appends follow their deliveries: one more
			// look after a pause catches a straggler.
			time.Sleep(500 * time.Millisecond)
			var again int
			if err := db.QueryRow(ctx, `
				WITH head AS (SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1)
				SELECT count(*) FROM projection_checkpoints c, head h
				 WHERE (c.commit_position, c.prepare_position) < (h.tx_id, h.position)`).Scan(&again); err != nil {
				t.Fatal(err)
			}
			if again == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not settle in 60 s: %d checkpoints behind, %d of %d e-mail outcomes", behind, sent, outcomes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processCPU is this process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU answers the CPU time of each server process connected to
// the database, by pid (read from /proc: the server runs on this machine).
func backendCPU(t *testing.T, ctx context.Context, db *pgx.Conn) map[int32]time.Duration {
	t.Helper()
	pids := pgtest.Collect(t, db, "server processes", pgx.RowTo[int32], "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	out := make(map[int32]time.Duration, len(pids))
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th (fields 14 and 15 of the whole line).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(u+st) * (time.Second / 100) // USER_HZ
	}
	return out
}

// cpuSince sums what each backend alive at the end used since before (a
// new one since it started). A backend that exited in between takes its
// time with it: the pools keep theirs open, so the sum errs low if at all.
func cpuSince(before, after map[int32]time.Duration) time.Duration {
	var d time.Duration
	for pid, v := range after {
		d += v - min(before[pid], v)
	}
	return d
}
