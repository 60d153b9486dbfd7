package webhooks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// Each webhook gets the events of its workspace from its subscription on,
// of the types it subscribes to, signed, in order; the log says so.
func TestDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{})
	// This test counts attempts: on a loaded machine a TLS handshake alone
	// can outlast the chaos tests' 400 ms, which would be a retry here.
	opts := e.options()
	opts.Timeout = 10 * time.Second
	e.run(opts)
	ws, other := e.workspace("acme"), e.workspace("other")
	e.invite(ws, "early@example.com") // before any webhook: not delivered
	all := e.subscribe(ws, "/all", "*")
	invites := e.subscribe(ws, "/invites", "UserInvited")
	elsewhere := e.subscribe(other, "/other", "*")
	e.invite(ws, "ann@example.com", "bob@example.com")
	e.invite(other, "cy@example.com")

	evs := e.events(ws.WorkspaceID)
	e.checkDelivered(all, want(evs, all), 20*time.Second)
	e.checkDelivered(invites, want(evs, invites, "UserInvited"), 20*time.Second)
	e.checkDelivered(elsewhere, want(e.events(other.WorkspaceID), elsewhere), 20*time.Second)
	if n := len(want(evs, all)); n != 4 { // its subscription, the next one, two invitations
		t.Fatalf("/all is due %d events, want 4", n)
	}
	got := e.recv.Accepted("/invites")
	emails := map[any]bool{}
	for _, d := range got {
		emails[decodeBody(t, d).Data["email"]] = true
	}
	if len(got) != 2 || !emails["ann@example.com"] || !emails["bob@example.com"] {
		t.Fatalf("/invites got %d deliveries with %v, want ann's and bob's", len(got), emails)
	}

	// The log: every delivery, delivered at the first attempt (its row
	// is written once the receiver has answered).
	var page projwebhooks.DeliveryPage
	eventually(t, "the log of /all", func() bool {
		var err error
		page, err = projwebhooks.NewQueries(e.pool).Deliveries(context.Background(), ws.WorkspaceID, all.id, 0, "")
		return err == nil && len(page.Items) == 4 && page.Items[0].Status != projwebhooks.StatusPending
	})
	if page.NextCursor != "" {
		t.Fatalf("log of /all: next %q, want none", page.NextCursor)
	}
	for i, d := range page.Items {
		ev := want(evs, all)[3-i] // newest first
		if d.EventID != ev.id || d.Type != ev.typ || d.Position != ev.pos.String() || d.Status != projwebhooks.StatusDelivered ||
			d.Attempts != 1 || d.LastStatusCode == nil || *d.LastStatusCode != 200 || d.LastAttemptAt == nil {
			t.Errorf("log item %d: %+v, want event %s delivered at the first attempt", i, d, ev.id)
		}
	}
	if _, err := projwebhooks.NewQueries(e.pool).Deliveries(context.Background(), other.WorkspaceID, all.id, 0, ""); domain.ErrorCode(err) != domain.CodeWebhookNotFound {
		t.Fatalf("the log of a webhook of another workspace: %v, want webhook_not_found", err)
	}
}

// A receiver that fails, holds its answer past the timeout or answers
// slowly, at random: every event still arrives, in order, signed.
func TestDeliveriesUnderChaos(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{Fail: 0.2, Timeout: 0.03, Slow: 0.1, TimeoutFor: 2 * time.Second, SlowFor: 50 * time.Millisecond, Seed: 18})
	e.run(e.options())
	type sub struct {
		ws    commands.CreateWorkspaceResult
		h     hook
		types []string
	}
	var subs []sub
	for w := range 4 {
		ws := e.workspace(fmt.Sprintf("ws%d", w))
		subs = append(subs, sub{ws, e.subscribe(ws, fmt.Sprintf("/ws%d/all", w), "*"), nil})
		subs = append(subs, sub{ws, e.subscribe(ws, fmt.Sprintf("/ws%d/roles", w), "RoleChanged", "UserInvited"), []string{"RoleChanged", "UserInvited"}})
	}
	// Load, every workspace at once.
	var wg sync.WaitGroup
	for w := range 4 {
		ws := subs[2*w].ws
		wg.Go(func() {
			for i := range 8 {
				e.invite(ws, fmt.Sprintf("p%d-%d-a@example.com", w, i), fmt.Sprintf("p%d-%d-b@example.com", w, i))
			}
		})
	}
	wg.Wait()
	for _, s := range subs {
		e.checkDelivered(s.h, want(e.events(s.ws.WorkspaceID), s.h, s.types...), 2*time.Minute)
	}
	var retried int
	eventually(t, "every delivery logged delivered", func() bool {
		retried = 0
		for _, s := range subs {
			page, err := projwebhooks.NewQueries(e.pool).Deliveries(context.Background(), s.ws.WorkspaceID, s.h.id, projwebhooks.MaxLimit, "")
			if err != nil {
				return false
			}
			for _, d := range page.Items {
				if d.Status != projwebhooks.StatusDelivered {
					return false
				}
				if d.Attempts > 1 {
					retried++
				}
			}
		}
		return true
	})
	if retried == 0 {
		t.Fatal("no delivery was retried: the receiver's chaos did not happen")
	}
}

// After the last try a delivery is logged failed and kept in the poison
// queue, and the next one goes: a failing receiver holds its webhook up
// only as long as the retries last.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{Fail: 1, Seed: 1})
	opts := e.options()
	opts.Retry = messaging.RetryPolicy{MaxRetries: 2, InitialInterval: 5 * time.Millisecond, MaxInterval: 10 * time.Millisecond}
	e.run(opts)
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/down", "*")
	e.invite(ws, "ann@example.com")
	q := projwebhooks.NewQueries(e.pool)
	var page projwebhooks.DeliveryPage
	eventually(t, "both deliveries logged failed", func() bool {
		var err error
		page, err = q.Deliveries(context.Background(), ws.WorkspaceID, h.id, 0, "")
		return err == nil && len(page.Items) == 2 && page.Items[0].Status == projwebhooks.StatusFailed && page.Items[1].Status == projwebhooks.StatusFailed
	})
	for _, d := range page.Items {
		if d.Attempts != 3 || d.LastStatusCode == nil || *d.LastStatusCode < 300 {
			t.Errorf("failed delivery %+v: want 3 attempts and the receiver's last status", d)
		}
	}
	// In order: the invitation was first tried once the subscription's
	// delivery had given up.
	var order []string
	for _, d := range e.recv.All() {
		order = append(order, decodeBody(t, d).Type)
	}
	if fmt.Sprint(order) != "[WebhookSubscribed WebhookSubscribed WebhookSubscribed UserInvited UserInvited UserInvited]" {
		t.Fatalf("attempts in the order %v", order)
	}
	eventually(t, "both deliveries in the poison queue", func() bool {
		var poisoned int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM watermill_webhook_deliveries_poison`).Scan(&poisoned)
		return err == nil && poisoned == 2
	})
	// The receiver is back: the next event goes.
	e.recv.SetChaos(webhooktest.Chaos{})
	e.invite(ws, "bob@example.com")
	evs := e.events(ws.WorkspaceID)
	last := evs[len(evs)-1]
	if !e.recv.WaitFor(20*time.Second, func() bool {
		acc := e.recv.Accepted("/down")
		return len(acc) == 1 && acc[0].ID == last.id.String()
	}) {
		t.Fatalf("after the receiver is back: accepted %d, want the last invitation", len(e.recv.Accepted("/down")))
	}
}
