package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/adapters/httpapi/httpapitest"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/projectionstest"
	"github.com/usersd/usersd/projections/userlist"
)

// httpClients is the load of issue 4's goal: 16 clients at once.
const httpClients = 16

// BenchmarkHTTPInvitations measures invitations per second over HTTP: 16
// clients, each sending POST /v1/workspaces/{ws}/invitations with one new
// address at a time, to a real listening server on a fresh database, with
// the projections running as `usersd serve` runs them. Each invitation
// reserves the address's account (one append) and appends UserInvited to
// the workspace stream (another), so it commits two events.
//
// Beside it, interleaved in chunks on the same database so that drift hits
// both sides alike, the floor: the very rows those invitations wrote, read
// back from the events table, inserted by 16 workers into a plain table of
// the same columns with only a bigserial key, one autocommitted INSERT
// (INSERT+COMMIT) of an invitation's rows at a time.
//
//	go test -run '^$' -bench HTTPInvitations ./adapters/httpapi/
//
// To tell the HTTP layer's cost from the command's, command-invitations/s
// is the same load sent to commands.InviteUsersHandler directly, without
// HTTP, JSON or JWT (interleaved too).
//
// workspaces=16 gives each client its own workspace (tenants side by
// side); workspaces=1 has all clients invite into one workspace, whose
// commands are serialised. Reported: invitations/s and raw-invitations/s,
// ratio (goal ≥ 0.3 over 16 workspaces), and the p50 and p99 latency of an invitation request.
func BenchmarkHTTPInvitations(b *testing.B) {
	for _, workspaces := range []int{httpClients, 1} {
		b.Run(fmt.Sprintf("workspaces=%d", workspaces), func(b *testing.B) {
			env := newHTTPBenchEnv(b, workspaces)
			env.invite(b, 4*httpClients) // warm up connections, caches, plans
			env.raw(b)
			env.direct(b, 4*httpClients)
			env.raw(b)
			b.ResetTimer()
			var api, raw, cmd time.Duration
			var lat []time.Duration
			for done := 0; done < b.N; {
				n := min(b.N-done, 500)
				d, l := env.invite(b, n)
				api += d
				lat = append(lat, l...)
				raw += env.raw(b)
				cmd += env.direct(b, n)
				env.raw(b) // keep the floor's table in step; not timed
				done += n
			}
			b.StopTimer()
			apiRate := float64(b.N) / api.Seconds()
			rawRate := float64(b.N) / raw.Seconds()
			b.ReportMetric(apiRate, "invitations/s")
			b.ReportMetric(rawRate, "raw-invitations/s")
			b.ReportMetric(float64(b.N)/cmd.Seconds(), "command-invitations/s")
			b.ReportMetric(apiRate/rawRate, "ratio")
			b.ReportMetric(ms(projectionstest.Latencies(lat).Percentile(50)), "p50-ms")
			b.ReportMetric(ms(projectionstest.Latencies(lat).Percentile(99)), "p99-ms")
		})
	}
}

type httpBenchEnv struct {
	url     string
	client  *http.Client
	pool    *pgxpool.Pool
	admins  []string    // a token per client
	owners  []uuid.UUID // the user id behind each token
	targets []uuid.UUID // the workspace of each client
	handler commands.Handler[commands.InviteUsers, commands.InviteUsersResult]
	next    atomic.Int64
	floor   *projectionstest.Floor
}

func newHTTPBenchEnv(b *testing.B, workspaces int) *httpBenchEnv {
	b.Helper()
	ctx := context.Background()
	_, url := pgtest.New(b)
	pool := projectionstest.Pool(b, url, postgres.DefaultMaxConns) // as usersd serve runs

	store := pgstore.New(pool)
	b.Cleanup(store.Close)
	deps := eventstoretest.DepsWithCaches(store, testCodec, commands.EphemeralLinkSecrets(), eventstoretest.ServeCaches)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range []projections.Projection{userlist.New(), memberships.New(), audit.New()} {
		r := projections.NewRunner(pool, p, eventstore.Source{Store: store, Codec: testCodec}, projections.RunnerOptions{Logger: quiet})
		wg.Go(func() { _ = r.Run(runCtx) })
	}
	waiter := projections.NewWaiter(pool, nil, projections.WithWaiterLogger(quiet))
	if err := waiter.Start(runCtx); err != nil {
		cancel()
		b.Fatal(err)
	}
	policy := commands.DefaultInvitationPolicy()
	// The daily limits are policy, not work: out of the way.
	policy.Limits = domain.InviteLimits{PerWorkspace: math.MaxInt32, PerInviter: math.MaxInt32}
	app := commands.NewApplication(deps, policy, commands.Instrumentation{})
	server, err := httpapi.New(httpapi.Config{
		App: app, DB: pool, Waiter: waiter, JWTSecret: testSecret, AuditSigner: testSigner, Logger: quiet,
		Links: discardLinks{}, Keys: testKeys, Events: eventstore.Source{Store: store, Codec: testCodec},
	})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	srv := httptest.NewServer(server)
	b.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		waiter.Wait()
	})
	env := &httpBenchEnv{
		url: srv.URL, pool: pool,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: httpClients, MaxConnsPerHost: httpClients}},
		handler: app.Commands.InviteUsers,
	}
	b.Cleanup(env.client.CloseIdleConnections)
	// Workspaces and their Admins, made through the API as the platform.
	var tokens []string
	var owners, wss []uuid.UUID
	for i := range workspaces {
		var out struct {
			WorkspaceID, OwnerUserID uuid.UUID
		}
		body := fmt.Sprintf(`{"name":"Bench %d","owner":{"email":"owner%d@bench.test","name":"Owner"}}`, i, i)
		if err := env.post("/v1/workspaces", systemToken, body, http.StatusCreated, &out); err != nil {
			b.Fatal(err)
		}
		tokens, wss = append(tokens, userToken(out.OwnerUserID)), append(wss, out.WorkspaceID)
		owners = append(owners, out.OwnerUserID)
	}
	for c := range httpClients {
		env.admins = append(env.admins, tokens[c%workspaces])
		env.owners = append(env.owners, owners[c%workspaces])
		env.targets = append(env.targets, wss[c%workspaces])
	}
	env.floor = projectionstest.NewFloor(b, pool, "raw_events", "")
	return env
}

type discardLinks struct{}

func (discardLinks) Deliver(context.Context, []httpapi.InvitationLink) {}

func (env *httpBenchEnv) post(path, token, body string, want int, out any) error {
	r, err := http.NewRequest(http.MethodPost, env.url+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	return httpapitest.Exchange(env.client, r, want, out)
}

// invite sends n invitations of one new address each from the 16 clients
// and answers the elapsed time and each request's latency.
func (env *httpBenchEnv) invite(b *testing.B, n int) (time.Duration, []time.Duration) {
	lat := make([]time.Duration, n)
	d := httpapitest.FromClients(b, httpClients, "client", n, func(c int, i int64) error {
		var out httpapitest.Invitations
		path := "/v1/workspaces/" + env.targets[c].String() + "/invitations"
		body := fmt.Sprintf(`{"emails":"invitee%d@bench.test","role":"Editor"}`, env.next.Add(1))
		t0 := time.Now()
		err := env.post(path, env.admins[c], body, http.StatusOK, &out)
		lat[i] = time.Since(t0)
		if err != nil {
			return err
		}
		return out.InvitedOne()
	})
	return d, lat
}

// direct sends n invitations like invite does, straight to the command
// handler, and answers the elapsed time.
func (env *httpBenchEnv) direct(b *testing.B, n int) time.Duration {
	return httpapitest.FromClients(b, httpClients, "command", n, func(c int, _ int64) error {
		res, err := env.handler.Handle(context.Background(), commands.InviteUsers{
			WorkspaceID: env.targets[c], Role: "Editor",
			Emails: []string{fmt.Sprintf("invitee%d@bench.test", env.next.Add(1))},
			Meta:   commands.Meta{Actor: domain.Actor{UserID: env.owners[c]}},
		})
		if err == nil && (len(res.Results) != 1 || res.Results[0].Outcome != domain.OutcomeInvited) {
			err = fmt.Errorf("outcome %+v, want invited", res.Results)
		}
		return err
	})
}

// raw inserts the rows the events table gained since the last call into
// raw_events from 16 workers, one autocommitted INSERT per invitation's
// rows (two, taken in order), and answers the time the inserts took.
func (env *httpBenchEnv) raw(b *testing.B) time.Duration {
	d, _ := env.floor.Insert(b, httpClients, 2)
	return d
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
