package webhooks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// dispatched waits until the dispatcher has applied pos and the queue is
// empty: what it was due is delivered or dropped.
func (e *env) dispatched(pos domain.Position) {
	e.t.Helper()
	eventually(e.t, "the dispatcher at "+pos.String()+" and an empty queue", func() bool {
		var c, p int64
		var queued int
		err := e.pool.QueryRow(context.Background(), `
			SELECT commit_position, prepare_position, (SELECT count(*) FROM watermill_webhook_deliveries)
			FROM projection_checkpoints WHERE name = $1`, projwebhooks.Name).Scan(&c, &p, &queued)
		return err == nil && !(domain.Position{Commit: uint64(c), Prepare: uint64(p)}).Less(pos) && queued == 0
	})
}

// A removed webhook gets nothing more: neither new events nor what was
// queued for it; its log, secret and queue go.
func TestRemoval(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{})
	e.run(e.options())
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/gone", "*")
	e.invite(ws, "ann@example.com")
	e.checkDelivered(h, want(e.events(ws.WorkspaceID), h), 20*time.Second)
	before := len(e.recv.All())
	pos, err := e.app.Commands.RemoveWebhook.Handle(context.Background(), commands.RemoveWebhook{
		WorkspaceID: ws.WorkspaceID, WebhookID: h.id, Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	last := e.invite(ws, "bob@example.com", "cy@example.com")
	if last.Less(pos) {
		t.Fatal("the invitation is before the removal")
	}
	e.dispatched(last)
	if got := len(e.recv.All()); got != before {
		t.Fatalf("%d deliveries after the removal, want none", got-before)
	}
	var rows int
	if err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM webhooks) + (SELECT count(*) FROM webhook_deliveries)
		+ (SELECT count(*) FROM webhook_secrets)`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows of the removed webhook left: %d (%v)", rows, err)
	}
	if _, err := projwebhooks.NewQueries(e.pool).Deliveries(context.Background(), ws.WorkspaceID, h.id, 0, ""); domain.ErrorCode(err) != domain.CodeWebhookNotFound {
		t.Fatalf("the log of a removed webhook: %v, want webhook_not_found", err)
	}
}

// A replay delivers again the workspace's events after a position, and
// before the request, that the webhook subscribes to, its subscription's
// past included; then new events go on.
func TestReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{})
	e.run(e.options())
	ws, other := e.workspace("acme"), e.workspace("other")
	from := e.invite(ws, "ann@example.com")
	e.invite(ws, "bob@example.com")
	e.invite(other, "dan@example.com")
	e.invite(ws, "cy@example.com")
	h := e.subscribe(ws, "/replayed", "UserInvited")
	e.dispatched(h.pos)
	if n := len(e.recv.All()); n != 0 {
		t.Fatalf("%d deliveries before the replay, want none", n)
	}
	_, err := e.app.Commands.ReplayWebhook.Handle(context.Background(), commands.ReplayWebhook{
		WorkspaceID: ws.WorkspaceID, WebhookID: h.id, From: from, Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.invite(ws, "dee@example.com")
	evs := e.events(ws.WorkspaceID)
	var replayed []stored
	for _, ev := range evs {
		if from.Less(ev.pos) && ev.typ == "UserInvited" {
			replayed = append(replayed, ev)
		}
	}
	if len(replayed) != 3 { // bob, cy, and dee (a new event)
		t.Fatalf("%d invitations after the replay's position, want 3", len(replayed))
	}
	if !e.recv.WaitFor(20*time.Second, func() bool { return len(e.recv.Accepted("/replayed")) == 3 }) {
		t.Fatalf("accepted %d deliveries, want 3", len(e.recv.Accepted("/replayed")))
	}
	got := map[string]string{}
	for _, d := range e.recv.Accepted("/replayed") {
		got[d.ID] = fmt.Sprint(decodeBody(t, d).Data["email"])
		if err := webhooktest.Verify(h.secret, d.ID, d.Timestamp, d.Signature, d.Body, time.Now(), 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range replayed {
		if got[ev.id.String()] == "" {
			t.Errorf("event %s (%s) was not delivered: %v", ev.id, ev.typ, got)
		}
	}
	eventually(t, "the replay done", func() bool {
		var n int
		return e.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_replays`).Scan(&n) == nil && n == 0
	})
}

// A body is built when it is sent, from the event opened then: the values
// of a person erased meanwhile come out null, never sealed.
func TestErasedBeforeDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{Fail: 1})
	e.run(e.options())
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/erased", "UserInvited")
	e.invite(ws, "ann@example.com")
	if !e.recv.WaitFor(20*time.Second, func() bool { return len(e.recv.All()) > 0 }) {
		t.Fatal("no attempt")
	}
	evs := want(e.events(ws.WorkspaceID), h, "UserInvited")
	ann := evs[0].data.(domain.UserInvited).UserID
	if err := testKeys.Destroy(context.Background(), ann); err != nil {
		t.Fatal(err)
	}
	// An attempt in flight may have opened the event before; the next ones
	// open it without ann's address. Let one of those through.
	if !e.recv.WaitFor(20*time.Second, func() bool {
		all := e.recv.All()
		_, has := decodeBody(t, all[len(all)-1]).Data["email"]
		return has && decodeBody(t, all[len(all)-1]).Data["email"] == nil
	}) {
		t.Fatal("no attempt after the erasure")
	}
	e.recv.SetChaos(webhooktest.Chaos{})
	if !e.recv.WaitFor(20*time.Second, func() bool { return len(e.recv.Accepted("/erased")) == 1 }) {
		t.Fatal("the delivery was not accepted")
	}
	if b := decodeBody(t, e.recv.Accepted("/erased")[0]); b.Data["email"] != nil || b.Data["userId"] != ann.String() {
		t.Fatalf("body of the erased person's invitation: %v, want the email null and the user id", b.Data)
	}
}

// Deliveries to a private address are refused at the connection, even to
// a webhook subscribed when it was allowed (or when its name resolved
// elsewhere): nothing reaches the receiver, the log tells the attempts.
func TestPrivateTargetRefusedAtDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{})
	opts := e.options()
	opts.AllowPrivate = false
	opts.Retry.MaxRetries = 2
	e.run(opts)
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/private", "*")
	eventually(t, "the delivery logged failed", func() bool {
		page, err := projwebhooks.NewQueries(e.pool).Deliveries(context.Background(), ws.WorkspaceID, h.id, 0, "")
		return err == nil && len(page.Items) == 1 && page.Items[0].Status == projwebhooks.StatusFailed &&
			page.Items[0].Attempts == 3 && page.Items[0].LastStatusCode == nil
	})
	if n := len(e.recv.All()); n != 0 {
		t.Fatalf("the receiver at 127.0.0.1 got %d deliveries, want none", n)
	}
}

// A stop in the middle of deliveries (a deploy) loses none: what was in
// hand or read ahead comes back after the restart.
func TestStopLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{Slow: 1, SlowFor: 5 * time.Millisecond})
	stop := e.run(e.options())
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/restart", "*")
	for i := range 10 {
		e.invite(ws, fmt.Sprintf("a%d@example.com", i), fmt.Sprintf("b%d@example.com", i), fmt.Sprintf("c%d@example.com", i))
	}
	if !e.recv.WaitFor(20*time.Second, func() bool { return len(e.recv.All()) >= 5 }) {
		t.Fatal("no deliveries")
	}
	stop()
	e.run(e.options())
	e.checkDelivered(h, want(e.events(ws.WorkspaceID), h), 30*time.Second)
}
