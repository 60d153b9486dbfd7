package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/httpapi/httpapitest"
	"github.com/usersd/usersd/projections/projectionstest"
)

// serviceClients is the outside run's load: 16 HTTP clients, each with
// its own workspace.
const serviceClients = 16

// serviceParts groups the tables into the parts of the pipeline an
// invitation goes through, for the per-part cost table.
var serviceParts = map[string]string{
	"events":                                 "event store (accounts, workspaces, outcomes)",
	"account_keys":                           "sealing keys",
	"userlist_users":                         "user list",
	"userlist_workspaces":                    "user list",
	"userlist_logins":                        "user list",
	"memberships":                            "memberships",
	"memberships_accounts":                   "memberships",
	"memberships_workspaces":                 "memberships",
	"membership_intervals":                   "history",
	"audit_entries":                          "audit",
	"audit_user_emails":                      "audit",
	"history_workspaces":                     "history",
	"projection_checkpoints":                 "checkpoints",
	"watermill_invitation_emails":            "outbox (watermill)",
	"watermill_invitation_emails_p1":         "outbox (watermill)",
	"watermill_invitation_emails_p2":         "outbox (watermill)",
	"watermill_invitation_emails_p3":         "outbox (watermill)",
	"watermill_offsets_invitation_emails":    "mailer offsets (watermill)",
	"watermill_offsets_invitation_emails_p1": "mailer offsets (watermill)",
	"watermill_offsets_invitation_emails_p2": "mailer offsets (watermill)",
	"watermill_offsets_invitation_emails_p3": "mailer offsets (watermill)",
	"watermill_invitation_emails_poison":     "mailer offsets (watermill)",
	"mail_deliveries":                        "delivery log",
	"dev_mailbox":                            "dev mailbox",
	"webhooks":                               "webhooks",
	"webhook_deliveries":                     "webhooks",
	"webhook_replays":                        "webhooks",
	"webhook_secrets":                        "webhooks",
	"watermill_webhook_deliveries":           "webhooks",
	"watermill_webhook_deliveries_poison":    "webhooks",
}

// BenchmarkServiceInvitations measures the whole service under HTTP load
// the way issue 19's outside run did: `usersd serve` in-process on a fresh
// database (its two roles, the HTTP API, every projection, the invitation
// e-mail process manager mailing to an in-process SMTP server), 16 clients
// each inviting new addresses into its own workspace, one address per
// request, each followed by a read-your-writes read of the user list
// (X-Consistent-With the write's position, which must show the address).
//
// The window runs from the first invitation until every e-mail was sent,
// its outcome recorded as an event and every projection past it; the WAL
// it wrote to the service's database (projectionstest.WALWindow) gives the
// costs per invitation: committed transactions, rows inserted, updated
// and deleted, WAL bytes, and by part (the log of the benchmark prints the
// table). all-tx/inv adds the read-only transactions, which write no WAL,
// from pg_stat_database (as the outside run counted, so approximate: the
// counters are flushed late). Beside it, after the window, the floor: the invitations' rows
// (AccountRegistered and UserInvited) inserted by 16 workers, one
// autocommitted INSERT of an invitation's two rows at a time.
//
// The run is a fixed number of invitations (USERSD_BENCH_SERVICE_INVITATIONS,
// default 3200; at most 8000, the invitation policy's daily limit of 500 per
// workspace), whatever b.N:
//
//	USERSD_BENCH_SERVICE_TABLE=/tmp/parts.md go test -run '^$' -bench ServiceInvitations -benchtime 1x ./cmd/usersd/
func BenchmarkServiceInvitations(b *testing.B) {
	n := 3200
	if v := os.Getenv("USERSD_BENCH_SERVICE_INVITATIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < serviceClients || n > 8000-4*serviceClients {
			b.Fatalf("USERSD_BENCH_SERVICE_INVITATIONS=%q: want %d to %d", v, serviceClients, 8000-4*serviceClients)
		}
	}
	for range b.N {
		env := newServiceBench(b)
		env.run(b, 4*serviceClients) // warm up connections, caches, plans
		env.waitMailed(b)
		env.floor.Skip(b)
		commits0, polls0 := env.xactCommits(b), env.polls
		window := projectionstest.StartWAL(b, env.ownerURL)
		elapsed, write, visible := env.run(b, n)
		env.waitMailed(b)
		cost, err := window.Stop(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		// The read-only transactions write no WAL: the database's
		// statistics count them, once the backends that ran them have
		// flushed their counters, which they do on exit. The warm-up's
		// last second may be flushed after the first reading.
		env.stop()
		env.poll.Close()
		time.Sleep(200 * time.Millisecond)
		allTx := env.xactCommits(b) - commits0 - (env.polls - polls0)
		raw, rows := env.floor.Insert(b, serviceClients, 2)
		if rows != 2*n {
			b.Fatalf("the floor took %d rows, want %d (an account and an invitation per address)", rows, 2*n)
		}
		if cost.Open != 0 {
			b.Errorf("%d transactions still open when the window closed", cost.Open)
		}

		rate, rawRate := float64(n)/elapsed.Seconds(), float64(n)/raw.Seconds()
		b.ReportMetric(rate, "invitations/s")
		b.ReportMetric(rawRate, "raw-invitations/s")
		b.ReportMetric(rate/rawRate, "ratio")
		b.ReportMetric(float64(cost.Commits)/float64(n), "tx/inv")
		b.ReportMetric(float64(allTx)/float64(n), "all-tx/inv")
		b.ReportMetric(float64(cost.Inserted)/float64(n), "inserted/inv")
		b.ReportMetric(float64(cost.Updated)/float64(n), "updated/inv")
		b.ReportMetric(float64(cost.Deleted)/float64(n), "deleted/inv")
		b.ReportMetric(float64(cost.Bytes)/float64(n), "WAL-B/inv")
		// Full-page images depend on when the cluster last checkpointed
		// (other databases' writes count): apart, the rest is ours alone.
		b.ReportMetric(float64(cost.FPIBytes)/float64(n), "WAL-FPI-B/inv")
		b.ReportMetric(ms(write.Percentile(50)), "write-p50-ms")
		b.ReportMetric(ms(write.Percentile(99)), "write-p99-ms")
		b.ReportMetric(ms(visible.Percentile(50)), "visible-p50-ms")
		b.ReportMetric(ms(visible.Percentile(99)), "visible-p99-ms")
		// The benchmark's log keeps ten lines: the whole table goes to
		// USERSD_BENCH_SERVICE_TABLE, if set.
		table := costTable(cost, n, serviceParts)
		if path := os.Getenv("USERSD_BENCH_SERVICE_TABLE"); path != "" {
			// Each table its own part too.
			tables := map[string]string{}
			for name := range cost.Tables {
				tables[name] = name
			}
			if err := os.WriteFile(path, []byte(table+"\n"+costTable(cost, n, tables)), 0o644); err != nil {
				b.Error(err)
			}
		}
		b.Log(table)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// costTable is the table of a window by parts (table → part), per
// invitation, in Markdown.
func costTable(cost projectionstest.WALCost, n int, parts map[string]string) string {
	var sb strings.Builder
	per := func(v int) string { return strconv.FormatFloat(float64(v)/float64(n), 'f', 2, 64) }
	fmt.Fprintf(&sb, "per invitation (%d invitations): %s tx, %s inserted, %s updated (%s HOT), %s deleted, %s locked, %.0f B WAL (%.0f B full-page images); aborted %s\n",
		n, per(cost.Commits), per(cost.Inserted), per(cost.Updated), per(cost.HOT), per(cost.Deleted), per(cost.Locked),
		float64(cost.Bytes)/float64(n), float64(cost.FPIBytes)/float64(n), per(cost.Aborts))
	sb.WriteString("| part | tx | inserted | updated | deleted | WAL B | tables |\n|---|---|---|---|---|---|---|\n")
	for _, p := range cost.ByPart(parts) {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %.0f | %s |\n", p.Part, per(p.Commits), per(p.Inserted), per(p.Updated), per(p.Deleted),
			float64(p.Bytes)/float64(n), strings.Join(p.Tables, ", "))
	}
	return sb.String()
}

type serviceBench struct {
	base, ownerURL string
	owner          *pgxpool.Pool
	// poll is waitMailed's, polls its queries: closed before the
	// statistics are read, and its transactions taken out of them.
	poll       *pgxpool.Pool
	polls      int64
	client     *http.Client
	tokens     []string
	workspaces []uuid.UUID
	floor      *projectionstest.Floor
	mails      atomic.Int64
	next       atomic.Int64
	stop       func()
}

func newServiceBench(b *testing.B) *serviceBench {
	b.Helper()
	env := &serviceBench{}
	smtp := smtptest.Start(b, smtptest.Options{Forget: true, Received: func(smtptest.Message) { env.mails.Add(1) }})
	vars := twoRoles(b)
	vars["USERSD_JWT_SECRET"], vars[envSMTPURL] = testJWTSecret, "smtp://"+smtp.Addr
	env.ownerURL = vars[envMigrateDatabaseURL]
	s := startServing(b, vars)
	env.base = s.base
	env.stop = func() {
		if res := s.stop(); res.code != exitOK {
			b.Errorf("serve exited %d:\n%s", res.code, res.stderr)
		}
	}
	b.Cleanup(env.stop)
	env.owner = projectionstest.Pool(b, env.ownerURL, 4)
	env.poll = projectionstest.Pool(b, env.ownerURL, 1)
	env.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: serviceClients, MaxConnsPerHost: serviceClients}}
	b.Cleanup(env.client.CloseIdleConnections)
	for i := range serviceClients {
		var out struct{ WorkspaceID, OwnerUserID uuid.UUID }
		body := fmt.Sprintf(`{"name":"Bench %d","owner":{"email":"owner%d@bench.test","name":"Owner"}}`, i, i)
		if err := env.do(b, http.MethodPost, "/v1/workspaces", systemToken(), "", body, http.StatusCreated, &out); err != nil {
			b.Fatal(err)
		}
		env.workspaces = append(env.workspaces, out.WorkspaceID)
		env.tokens = append(env.tokens, userToken(out.OwnerUserID.String()))
	}
	env.floor = projectionstest.NewFloor(b, env.owner, "raw_events", "type IN ('AccountRegistered', 'UserInvited')")
	return env
}

func (env *serviceBench) do(b *testing.B, method, path, token, consistentWith, body string, want int, out any) error {
	return httpapitest.Exchange(env.client, apiRequest(b, method, env.base+path, token, consistentWith, body), want, out)
}

// run has the 16 clients invite n new addresses, each client into its
// workspace, and read each back with the write's position; it answers the
// time it took, each invitation's latency and each read's (from the
// write's answer until the list showed the address).
func (env *serviceBench) run(b *testing.B, n int) (time.Duration, projectionstest.Latencies, projectionstest.Latencies) {
	write, visible := make(projectionstest.Latencies, n), make(projectionstest.Latencies, n)
	d := httpapitest.FromClients(b, serviceClients, "client", n, func(c int, i int64) error {
		ws := env.workspaces[c].String()
		addr := fmt.Sprintf("invitee%d@bench.test", env.next.Add(1))
		var inv httpapitest.Invitations
		t0 := time.Now()
		err := env.do(b, http.MethodPost, "/v1/workspaces/"+ws+"/invitations", env.tokens[c], "",
			`{"emails":"`+addr+`","role":"Editor"}`, http.StatusOK, &inv)
		t1 := time.Now()
		if err == nil {
			err = inv.InvitedOne()
		}
		var list struct{ Items []struct{ Email string } }
		// A read that waited the service's 5 s for its position
		// answers 504 (projection_lag): asked again, it counts
		// as one slow read. Long transactions of other databases
		// on a shared server hold every subscription back.
		for tries := 0; err == nil; tries++ {
			err = env.do(b, http.MethodGet, "/v1/workspaces/"+ws+"/users?q="+url.QueryEscape(addr), env.tokens[c], inv.Position, "", http.StatusOK, &list)
			var lag *httpapitest.StatusError
			if !errors.As(err, &lag) || lag.Status != http.StatusGatewayTimeout || tries == 5 {
				break
			}
			err = nil
		}
		if err == nil && !slices.ContainsFunc(list.Items, func(it struct{ Email string }) bool { return it.Email == addr }) {
			err = fmt.Errorf("the list read at the invitation's position %s does not show %s: %+v", inv.Position, addr, list.Items)
		}
		if err != nil {
			return err
		}
		write[i], visible[i] = t1.Sub(t0), time.Since(t1)
		return nil
	})
	return d, write, visible
}

// waitMailed waits until every invitation so far has had its e-mail sent,
// its outcome recorded (the delivery log's rows marked, the user list
// showing it sent) and every projection past the last event.
func (env *serviceBench) waitMailed(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	want := env.next.Load()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var logged, unrecorded, sent, behind int64
		env.polls++
		err := env.poll.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM mail_deliveries),
			       (SELECT count(*) FROM mail_deliveries WHERE recorded_at IS NULL),
			       (SELECT count(*) FROM userlist_users WHERE email_status = 'sent'),
			       (SELECT count(*) FROM projection_checkpoints c, (SELECT tx_id, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1) e
			         WHERE (c.commit_position, c.prepare_position) < (e.tx_id, e.position))`).Scan(&logged, &unrecorded, &sent, &behind)
		if err != nil {
			b.Fatal(err)
		}
		mailed := env.mails.Load()
		if mailed >= want && logged >= want && unrecorded == 0 && sent >= want && behind == 0 {
			if mailed > want {
				b.Fatalf("%d e-mails for %d invitations", mailed, want)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 2 minutes: %d of %d e-mails sent, %d logged (%d unrecorded), %d shown sent, %d projections behind",
				mailed, want, logged, unrecorded, sent, behind)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// xactCommits reads the database's committed transactions, read-only ones
// included, from its statistics.
func (env *serviceBench) xactCommits(b *testing.B) int64 {
	b.Helper()
	var n int64
	if err := env.owner.QueryRow(context.Background(),
		`SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
