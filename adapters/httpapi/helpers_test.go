package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/internal/testlog"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// testKEK wraps the webhooks' secrets in the key store.
var testKEK = func() pii.KEK {
	k, err := pii.NewKEK(bytes.Repeat([]byte{9}, pii.KeySize))
	if err != nil {
		panic(err)
	}
	return k
}()

// testSigner signs the audit heads of every test's API.
var testSigner = func() *audit.Signer {
	s, err := audit.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return s
}()

// webhookDispatchers marks the tests whose API runs the webhooks'
// dispatcher, which the reads of webhooks wait for
// (withWebhookDispatcher); the others spare the machine a runner.
var webhookDispatchers sync.Map // testing.TB → struct{}

// withWebhookDispatcher makes t's API run the webhooks' dispatcher.
func withWebhookDispatcher(t testing.TB) {
	webhookDispatchers.Store(t, struct{}{})
	t.Cleanup(func() { webhookDispatchers.Delete(t) })
}

// eventStores holds, by test, a function that opens the store for the
// test's events instead of PostgreSQL's (lifecycle_esdb_test.go).
var eventStores sync.Map // testing.TB → func(testing.TB) eventstore.Store

// linkBox records the invitation links the API hands to the mailer.
type linkBox struct {
	mu    sync.Mutex
	links map[string][]httpapi.InvitationLink
}

func (b *linkBox) Deliver(_ context.Context, links []httpapi.InvitationLink) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range links {
		b.links[l.Email] = append(b.links[l.Email], l)
	}
}

// latest is the newest link sent to email.
func (b *linkBox) latest(t testing.TB, email string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	ls := b.links[email]
	if len(ls) == 0 {
		t.Fatalf("no invitation link was sent to %s", email)
	}
	return ls[len(ls)-1].Token
}

// api is a running server on a fresh database, with the projection runners
// and the waiter running.
type api struct {
	t   testing.TB
	url string
	// client checks every exchange against openapi.yaml (openapi_test.go).
	client *http.Client
	pool   *pgxpool.Pool
	// keys are the people's data keys, which an account's deletion
	// destroys.
	keys  *pii.MemoryKeyring
	links *linkBox
	logs  *testlog.Buffer
	// handler is the API, for tests that serve it on a server of their own.
	handler http.Handler
}

func newAPI(t testing.TB) *api { t.Helper(); return newAPIWith(t, nil) }

// newAPIWith is newAPI with the configuration changed by configure.
func newAPIWith(t testing.TB, configure func(*httpapi.Config)) *api {
	t.Helper()
	return newAPIWithApp(t, nil, configure)
}

// newAPIWithApp is newAPIWith whose application is built from the
// dependencies and the policy as app changes them.
func newAPIWithApp(t testing.TB, app func(*commands.Deps, *commands.InvitationPolicy), configure func(*httpapi.Config)) *api {
	t.Helper()
	// The service's side as usersd serve runs it: as the role that owns
	// nothing and may only read and append events and audit entries.
	pool, _ := pgtest.NewService(t)
	var store eventstore.Store
	if open, ok := eventStores.Load(t); ok {
		store = open.(func(testing.TB) eventstore.Store)(t)
	} else {
		pg := pgstore.New(pool, pgstore.WithPollInterval(50*time.Millisecond))
		t.Cleanup(pg.Close)
		store = pg
	}
	deps := eventstoretest.Deps(store, testCodec, commands.EphemeralLinkSecrets())
	// testKeys: the keyring the codec seals with, whose keys an account's
	// deletion destroys; the accounts record it (deps.Deleter).
	keys := testKeys
	deps.People, deps.Keys = postgres.NewPersonDirectory(pool), shredder{keys}
	// Webhooks: the guard as in production (the tests subscribe public
	// addresses, which nothing delivers to: no sender runs), secrets in
	// the key store.
	deps.WebhookTargets, deps.WebhookSecrets = webhooks.Guard{}, keystore.New(pool, testKEK).WebhookSecrets()
	policy := commands.DefaultInvitationPolicy()
	if app != nil {
		app(&deps, &policy)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	running := []projections.Projection{userlist.New(), memberships.New(), audit.New(), history.New()}
	if _, ok := webhookDispatchers.Load(t); ok {
		running = append(running, webhooks.Dispatcher{})
	}
	for _, p := range running {
		r := projections.NewRunner(pool, p, eventstore.Source{Store: store, Codec: testCodec}, projections.RunnerOptions{
			Logger: quiet, LockRetry: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		})
		wg.Go(func() { _ = r.Run(ctx) })
	}
	waiter := projections.NewWaiter(pool, nil, projections.WithWaiterLogger(quiet), projections.WithFallbackInterval(100*time.Millisecond))
	if err := waiter.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start waiter: %v", err)
	}
	a := &api{t: t, client: newOpenAPIClient(t), pool: pool, keys: keys, links: &linkBox{links: map[string][]httpapi.InvitationLink{}}, logs: &testlog.Buffer{}}
	cfg := httpapi.Config{
		App: commands.NewApplication(deps, policy, commands.Instrumentation{}), DB: pool, Waiter: waiter,
		JWTSecret: testSecret, AuditSigner: testSigner, Logger: slog.New(slog.NewJSONHandler(a.logs, nil)),
		// The keyring the store's codec seals with, whose keys an
		// account's deletion destroys.
		Keys:    keys,
		Events:  eventstore.Source{Store: store, Codec: testCodec},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "# metrics\n") }),
		Links:   a.links,
		Ready:   func(ctx context.Context) error { return pool.Ping(ctx) },
		// Far above the 5 s default: on a loaded CI machine the projections
		// may take longer, and a test asserts what it reads, not how fast.
		ConsistencyTimeout: 30 * time.Second,
	}
	if configure != nil {
		configure(&cfg)
	}
	server, err := httpapi.New(cfg)
	if err != nil {
		cancel()
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := httptest.NewServer(server)
	a.url, a.handler = srv.URL, server
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		waiter.Wait()
	})
	return a
}

// token mints a bearer token.
func token(sub uuid.UUID, system bool, exp time.Time) string {
	c := jwt.MapClaims{"sub": sub.String(), "exp": exp.Unix(), "iat": time.Now().Unix()}
	if system {
		c["scope"] = "system"
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		panic(err)
	}
	return s
}

func userToken(id uuid.UUID) string { return token(id, false, time.Now().Add(time.Hour)) }

var systemToken = token(uuid.New(), true, time.Now().Add(time.Hour))

// req is one request to make.
type req struct {
	method, path, token string
	body                any // marshalled unless a string or []byte (sent as is)
	contentType         string
	headers             map[string]string
}

// resp is an answer, read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem is the answer's problem code ("" if it is none).
func (r resp) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// fieldNamed tells whether a problem lists field in its errors.
func fieldNamed(r resp, field string) bool {
	return bytes.Contains(r.body, []byte(`"field":"`+field+`"`))
}

func (a *api) do(t testing.TB, rq req) resp {
	t.Helper()
	var body io.Reader
	ct := rq.contentType
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(raw)
		if ct == "" {
			ct = "application/json"
		}
	}
	hr, err := http.NewRequestWithContext(withTB(context.Background(), t), rq.method, a.url+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	if rq.token != "" {
		hr.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.headers {
		hr.Header.Set(k, v)
	}
	res, err := a.client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", rq.method, rq.path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

// must makes a request and fails the test unless it answers want.
func (a *api) must(t testing.TB, want int, rq req) resp {
	t.Helper()
	r := a.do(t, rq)
	if r.status != want {
		t.Fatalf("%s %s: got %d %s, want %d", rq.method, rq.path, r.status, r.body, want)
	}
	return r
}

// createWorkspace makes a workspace as the platform.
func (a *api) createWorkspace(t testing.TB, name, ownerEmail string) (ws, owner uuid.UUID, pos string) {
	t.Helper()
	var out struct {
		WorkspaceID, OwnerUserID uuid.UUID
		Position                 string
	}
	a.must(t, http.StatusCreated, req{method: "POST", path: "/v1/workspaces", token: systemToken,
		body: map[string]any{"name": name, "owner": map[string]string{"email": ownerEmail, "name": "Owner"}}}).json(t, &out)
	return out.WorkspaceID, out.OwnerUserID, out.Position
}

// newAdminWorkspace is newAPI with a workspace made by adminWorkspace, the
// start of most tests: it answers the API, the workspace, its owner and the
// owner's token.
func newAdminWorkspace(t testing.TB, name, ownerEmail string) (a *api, ws, owner uuid.UUID, adm string) {
	t.Helper()
	a = newAPI(t)
	ws, owner, adm = a.adminWorkspace(t, name, ownerEmail)
	return a, ws, owner, adm
}

// adminWorkspace makes a workspace as the platform and answers it, its
// owner and the owner's token.
func (a *api) adminWorkspace(t testing.TB, name, ownerEmail string) (ws, owner uuid.UUID, adm string) {
	t.Helper()
	ws, owner, _ = a.createWorkspace(t, name, ownerEmail)
	return ws, owner, userToken(owner)
}

type inviteResult struct {
	Email        string     `json:"email"`
	Outcome      string     `json:"outcome"`
	UserID       *uuid.UUID `json:"userId"`
	InvitationID *uuid.UUID `json:"invitationId"`
	Detail       string     `json:"detail"`
}

func (a *api) invite(t testing.TB, ws uuid.UUID, by string, emails any, role string) ([]inviteResult, string) {
	t.Helper()
	var out struct {
		Results  []inviteResult
		Position string
	}
	a.must(t, http.StatusOK, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/invitations", token: by,
		body: map[string]any{"emails": emails, "role": role}}).json(t, &out)
	return out.Results, out.Position
}

func (a *api) accept(t testing.TB, tok, name string) (uuid.UUID, string) {
	t.Helper()
	var out struct {
		UserID   uuid.UUID
		Position string
	}
	a.must(t, http.StatusOK, req{method: "POST", path: "/v1/invitations/accept", body: map[string]string{"token": tok, "name": name}}).json(t, &out)
	return out.UserID, out.Position
}

// join invites email with role and accepts: an active member.
func (a *api) join(t testing.TB, ws uuid.UUID, by, email, role string) (uuid.UUID, string) {
	t.Helper()
	return a.accept(t, a.pending(t, ws, by, email, role), strings.Split(email, "@")[0])
}

// pending invites email with role and answers the invitation's link token.
func (a *api) pending(t testing.TB, ws uuid.UUID, by, email, role string) string {
	t.Helper()
	a.invite(t, ws, by, email, role)
	return a.links.latest(t, email)
}

// eventCount counts the stored events.
func (a *api) eventCount(t testing.TB) int {
	t.Helper()
	return a.count(t, "SELECT count(*) FROM events")
}

// workspaceEventCount counts the events of workspace and login streams,
// leaving out account reservations.
func (a *api) workspaceEventCount(t testing.TB) int {
	t.Helper()
	return a.count(t, "SELECT count(*) FROM events WHERE stream_id NOT LIKE 'account-%'")
}

// count answers a query's single count.
func (a *api) count(t testing.TB, query string) int {
	t.Helper()
	var n int
	if err := a.pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func consistent(pos string) map[string]string { return map[string]string{"X-Consistent-With": pos} }

// shredder is the MemoryKeyring seen through DeleteAccount's KeyShredder
// port (the PostgreSQL key store answers the first destruction's time;
// DeleteAccount answers the recorded deletion's).
type shredder struct{ keys *pii.MemoryKeyring }

func (s shredder) Destroy(ctx context.Context, user uuid.UUID) (time.Time, error) {
	return time.Now(), s.keys.Destroy(ctx, user)
}
