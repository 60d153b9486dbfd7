package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// TestKill9LosesNoWebhookDelivery builds the real binary, subscribes a
// webhook in each of four workspaces to an in-process HTTPS receiver that
// fails, answers slowly and (rarely) holds its answer past the 10 s
// timeout, at random, and kills the binary with SIGKILL while it delivers
// under load. Once it is started again, every event of each workspace
// from its webhook's subscription on reaches the webhook, each signature
// verifies, and the events arrive in their order (an event is not accepted
// before every earlier one was). Copies are allowed: at least once.
func TestKill9LosesNoWebhookDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := buildUsersd(t, dir)
	recv := webhooktest.Start(t, webhooktest.Chaos{Fail: 0.15, Slow: 0.1, SlowFor: 30 * time.Millisecond, Timeout: 0.005, TimeoutFor: 15 * time.Second, Seed: 9})
	ca := filepath.Join(dir, "receiver.pem")
	if err := os.WriteFile(ca, recv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, dbURL := pgtest.New(t)
	// The receiver listens on 127.0.0.1 with a certificate of its own.
	env, base := binaryEnv(t, dbURL, "USERSD_DEV_MAILBOX=true", "USERSD_WEBHOOK_ALLOW_PRIVATE=true", "SSL_CERT_FILE="+ca)
	start := func(run int) *exec.Cmd { return startUsersd(t, bin, env, dir, base, run) }
	cmd := start(0)

	type hooked struct {
		ws, owner, path, secret string
	}
	var hooks []hooked
	for i := range 4 {
		ws, owner := kill9Workspace(base, fmt.Sprintf("hooks-%d", i))
		if ws == "" {
			t.Fatal("create a workspace: no answer")
		}
		h := hooked{ws: ws, owner: owner, path: fmt.Sprintf("/ws%d", i)}
		st, body, _ := call(t, "POST", base+"/v1/workspaces/"+ws+"/webhooks", owner, "",
			fmt.Sprintf(`{"url":%q,"events":["*"]}`, recv.URL+h.path))
		var res struct{ Secret string }
		if err := json.Unmarshal([]byte(body), &res); st != http.StatusCreated || err != nil {
			t.Fatalf("subscribe: %d %s", st, body)
		}
		h.secret = res.Secret
		hooks = append(hooks, h)
	}

	// Load: each workspace invites batches, and the kill comes once the
	// deliveries are in full swing, the load still running or just done.
	var clients sync.WaitGroup
	for i, h := range hooks {
		clients.Go(func() {
			for n := range 12 {
				kill9Invite(base, h.ws, h.owner, []string{fmt.Sprintf("a%d-%d@kill9.test", i, n), fmt.Sprintf("b%d-%d@kill9.test", i, n)})
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	want := 25 + rand.IntN(25)
	if !recv.WaitFor(2*time.Minute, func() bool { return len(recv.All()) >= want }) {
		t.Fatalf("only %d deliveries before the kill", len(recv.All()))
	}
	_ = cmd.Process.Signal(os.Kill)
	_ = cmd.Wait()
	clients.Wait()
	t.Logf("killed after %d delivery attempts", len(recv.All()))
	start(1)

	store := pgstore.New(pool, pgstore.WithLogger(discardLogger()))
	defer store.Close()
	codec := testCodec(t, pool)
	for _, h := range hooks {
		raws, err := store.ReadStream(context.Background(), eventstore.WorkspaceStream(mustUUID(t, h.ws)), eventstore.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := codec.Decode(context.Background(), raws...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		subscribed := false
		for _, r := range recs {
			_, isSub := r.Event.(domain.WebhookSubscribed)
			subscribed = subscribed || isSub
			if subscribed {
				ids = append(ids, r.Metadata.EventID.String())
			}
		}
		firstsOf := func() []string {
			var out []string
			seen := map[string]bool{}
			for _, d := range recv.Accepted(h.path) {
				if !seen[d.ID] {
					seen[d.ID] = true
					out = append(out, d.ID)
				}
			}
			return out
		}
		if !recv.WaitFor(3*time.Minute, func() bool { return len(firstsOf()) >= len(ids) }) {
			t.Fatalf("%s: %d of %d events delivered after the restart", h.path, len(firstsOf()), len(ids))
		}
		if got := firstsOf(); fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Fatalf("%s: events accepted in the order\n%v\nwant\n%v", h.path, got, ids)
		}
		copies := 0
		for _, d := range recv.Accepted(h.path) {
			if err := webhooktest.Verify(h.secret, d.ID, d.Timestamp, d.Signature, d.Body, time.Now(), 5*time.Minute); err != nil {
				t.Fatalf("%s: delivery %s: %v", h.path, d.ID, err)
			}
			copies++
		}
		t.Logf("%s: %d events delivered, %d accepted deliveries (copies: %d)", h.path, len(ids), copies, copies-len(ids))
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
