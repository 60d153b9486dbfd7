package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/internal/testpoll"
	"github.com/usersd/usersd/projections"
)

// testKeys and testCodec seal and open the tests' events.
var (
	testKeys  = pii.NewMemoryKeyring()
	testCodec = eventstore.NewCodec(testKeys, []byte("the tests' stream-name key, 32 B"))
	testKEK   = func() pii.KEK {
		k, err := pii.NewKEK(bytes.Repeat([]byte{7}, pii.KeySize))
		if err != nil {
			panic(err)
		}
		return k
	}()
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// opener opens events as usersd serve does, with the tests' codec.
func opener(ctx context.Context, typ string, version int, data []byte) (domain.RecordedEvent, error) {
	return testCodec.DecodeOne(ctx, eventstore.RecordedEvent{Type: typ, Data: data, Metadata: fmt.Appendf(nil, `{"schemaVersion":%d}`, version)})
}

// env is a database with its event store, the application over it, and a
// receiver.
type env struct {
	t       *testing.T
	pool    *pgxpool.Pool
	store   *pgstore.Store
	app     commands.Application
	secrets keystore.WebhookSecrets
	recv    *webhooktest.Receiver
}

func newEnv(t *testing.T, chaos webhooktest.Chaos) *env {
	t.Helper()
	pool, _ := pgtest.NewService(t)
	store := pgstore.New(pool, pgstore.WithLogger(quiet), pgstore.WithPollInterval(50*time.Millisecond))
	t.Cleanup(store.Close)
	secrets := keystore.New(pool, testKEK).WebhookSecrets()
	deps := eventstoretest.Deps(store, testCodec, commands.EphemeralLinkSecrets())
	// Subscriptions to the local receiver: the guard of subscriptions lets
	// them through; each test's service decides about deliveries.
	deps.WebhookTargets, deps.WebhookSecrets = webhooks.Guard{AllowPrivate: true}, secrets
	policy := commands.DefaultInvitationPolicy()
	policy.Limits = domain.InviteLimits{}
	return &env{t: t, pool: pool, store: store, app: commands.NewApplication(deps, policy, commands.Instrumentation{}),
		secrets: secrets, recv: webhooktest.Start(t, chaos)}
}

// options are a test's service options: fast retries, a short timeout.
func (e *env) options() webhooks.Options {
	return webhooks.Options{
		Logger: quiet, AllowPrivate: true, TLS: e.recv.TLS(),
		Retry:   messaging.RetryPolicy{MaxRetries: 40, InitialInterval: 5 * time.Millisecond, MaxInterval: 40 * time.Millisecond},
		Timeout: 400 * time.Millisecond, PollInterval: 20 * time.Millisecond, IdlePollInterval: 100 * time.Millisecond,
		Runner: projections.RunnerOptions{Logger: quiet, LockRetry: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
}

// run runs a service with opts until the test ends or stop is called.
func (e *env) run(opts webhooks.Options) (stop func()) {
	e.t.Helper()
	svc, err := webhooks.New(e.pool, eventstore.Source{Store: e.store, Codec: testCodec}, e.secrets, opener, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			e.t.Errorf("the webhooks stopped with %v", err)
		}
	}()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	e.t.Cleanup(stop)
	return stop
}

func (e *env) workspace(name string) commands.CreateWorkspaceResult {
	e.t.Helper()
	res, err := e.app.Commands.CreateWorkspace.Handle(context.Background(), commands.CreateWorkspace{
		Name: name, OwnerEmail: "owner@" + name + ".example", OwnerName: "Olga Owner", Meta: commands.Meta{Actor: domain.Actor{System: true}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// hook is a subscribed webhook: where it delivers and its secret.
type hook struct {
	id     uuid.UUID
	path   string
	secret string
	pos    domain.Position
}

func (e *env) subscribe(ws commands.CreateWorkspaceResult, path string, events ...string) hook {
	e.t.Helper()
	res, err := e.app.Commands.SubscribeWebhook.Handle(context.Background(), commands.SubscribeWebhook{
		WorkspaceID: ws.WorkspaceID, URL: e.recv.URL + path, Events: events, Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return hook{id: res.WebhookID, path: path, secret: res.Secret, pos: res.Position}
}

func (e *env) invite(ws commands.CreateWorkspaceResult, emails ...string) domain.Position {
	e.t.Helper()
	res, err := e.app.Commands.InviteUsers.Handle(context.Background(), commands.InviteUsers{
		WorkspaceID: ws.WorkspaceID, Emails: emails, Role: "Editor", Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Position
}

// stored is an event of a workspace's stream as the store keeps it.
type stored struct {
	id   uuid.UUID
	typ  string
	pos  domain.Position
	data domain.Event
}

// events reads a workspace's stream.
func (e *env) events(ws uuid.UUID) []stored {
	e.t.Helper()
	raws, err := e.store.ReadStream(context.Background(), eventstore.WorkspaceStream(ws), eventstore.ReadOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]stored, len(raws))
	recs, err := testCodec.Decode(context.Background(), raws...)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, r := range recs {
		out[i] = stored{id: r.Metadata.EventID, typ: domain.EventName(r.Event), pos: r.Position, data: r.Event}
	}
	return out
}

// want is the events h is due: those of its workspace from its
// subscription on, of the types it subscribes to.
func want(events []stored, h hook, types ...string) []stored {
	var out []stored
	for _, ev := range events {
		if ev.pos.Less(h.pos) {
			continue
		}
		if len(types) == 0 || contains(types, ev.typ) {
			out = append(out, ev)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// body is a delivery's body.
type body struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func decodeBody(t *testing.T, d webhooktest.Delivery) body {
	t.Helper()
	var b body
	if err := json.Unmarshal(d.Body, &b); err != nil {
		t.Fatalf("delivery %s: body %s: %v", d.ID, d.Body, err)
	}
	return b
}

// firsts is the ids of the deliveries accepted at path, each once, in the
// order of their first acceptance.
func firsts(r *webhooktest.Receiver, path string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range r.Accepted(path) {
		if !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d.ID)
		}
	}
	return out
}

// checkDelivered waits until h has accepted every event of evs, and checks
// that they came in their order (a later event not before an earlier one
// was accepted), and that every delivery, accepted or not, is signed with
// h's secret as a receiver verifies it.
func (e *env) checkDelivered(h hook, evs []stored, within time.Duration) {
	e.t.Helper()
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.id.String()
	}
	if !e.recv.WaitFor(within, func() bool { return len(firsts(e.recv, h.path)) >= len(ids) }) {
		e.t.Fatalf("%s: %d of %d events accepted within %v", h.path, len(firsts(e.recv, h.path)), len(ids), within)
	}
	got := firsts(e.recv, h.path)
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		e.t.Fatalf("%s: events accepted in the order\n%v\nwant\n%v", h.path, got, ids)
	}
	byID := map[string]stored{}
	for _, ev := range evs {
		byID[ev.id.String()] = ev
	}
	for _, d := range e.recv.All() {
		if d.Path != h.path {
			continue
		}
		if err := webhooktest.Verify(h.secret, d.ID, d.Timestamp, d.Signature, d.Body, time.Now(), 5*time.Minute); err != nil {
			e.t.Fatalf("%s: delivery %s: %v", h.path, d.ID, err)
		}
		b := decodeBody(e.t, d)
		ev, ok := byID[d.ID]
		if !ok {
			e.t.Fatalf("%s: a delivery of event %s, which it is not due", h.path, d.ID)
		}
		if d.ContentType != "application/json" || b.Type != ev.typ || b.Data["eventId"] != d.ID || b.Data["position"] != ev.pos.String() {
			e.t.Fatalf("%s: delivery %s: content type %q, body %s; want event %s at %s", h.path, d.ID, d.ContentType, d.Body, ev.typ, ev.pos)
		}
	}
}

// eventually polls cond, which reads the database, until it holds, for at
// most 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpoll.Until(t, 30*time.Second, what, cond)
}
