package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/broker"
	"github.com/usersd/usersd/adapters/broker/natstest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// natsVars are the variables that make serve publish to the test's own
// stream.
func natsVars(s *natstest.Space) map[string]string {
	return map[string]string{envNATSURL: s.URL, envNATSTestStream: s.Stream, envNATSTestSubjectPrefix: s.SubjectPrefix}
}

// TestServePublishesEveryEventToJetStream runs serve with USERSD_NATS_URL:
// every event of the store reaches the stream once, on its subject, and
// /metrics shows the publisher working.
func TestServePublishesEveryEventToJetStream(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.New(t)
	space := natstest.New(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"}
	for k, v := range natsVars(space) {
		vars[k] = v
	}
	s := startServingOn(t, vars)
	created := createWorkspace(t, s.base)
	if !kill9Invite(s.base, created.WorkspaceID, userToken(created.OwnerUserID), []string{"a@example.com", "b@example.com"}) {
		t.Fatal("the invitations failed")
	}
	msgs := waitForEveryEvent(t, pool, space)
	want := space.SubjectPrefix + "." + created.WorkspaceID + ".UserInvited"
	invited := 0
	for _, m := range msgs {
		if m.Subject == want {
			invited++
		}
	}
	if invited != 2 {
		t.Errorf("%d messages on %s, want 2", invited, want)
	}
	r, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, line := range []string{"usersd_nats_publisher_up 1", `usersd_projection_caught_up{projection="` + broker.Name + `"} 1`} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// TestJetStreamEveryEventOnceAcrossKill9 builds the binary, publishes to
// the test's stream under load, kills the binary with SIGKILL twice while
// it publishes, starts it again each time, and then counts the stream's
// messages by Nats-Msg-Id: every event of the store exactly once, none
// missing, none else.
func TestJetStreamEveryEventOnceAcrossKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := buildUsersd(t, dir)
	pool, dbURL := pgtest.New(t)
	space := natstest.New(t)
	extra := []string{"USERSD_DEV_MAILBOX=true"}
	for k, v := range natsVars(space) {
		extra = append(extra, k+"="+v)
	}
	env, base := binaryEnv(t, dbURL, extra...)

	cmd := startUsersd(t, bin, env, dir, base, 0)
	for run := 1; run <= 2; run++ {
		stop := make(chan struct{})
		var clients sync.WaitGroup
		for c := range 2 {
			clients.Go(func() { inviteUntil(stop, base, fmt.Sprintf("r%d-c%d", run, c)) })
		}
		// Kill while the publisher is in full swing: after a random
		// number of messages more.
		before, err := space.Count(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		target := before + 100 + uint64(rand.IntN(400))
		deadline := time.Now().Add(2 * time.Minute)
		for n := before; n < target; n, _ = space.Count(t.Context()) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: the stream holds %d messages after 2 minutes, want %d before the kill", run, n, target)
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Signal(os.Kill)
		_ = cmd.Wait()
		close(stop)
		clients.Wait()
		cmd = startUsersd(t, bin, env, dir, base, run)
	}
	// Events after the last restart too.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); inviteUntil(stop, base, "after") }()
	time.Sleep(200 * time.Millisecond) // load for a moment: no synchronisation depends on it
	close(stop)
	<-done
	msgs := waitForEveryEvent(t, pool, space)
	t.Logf("%d events, each published once across 2 kills", len(msgs))
}

// inviteUntil creates workspaces and invites new addresses into them, 10
// at a time, until stop closes.
func inviteUntil(stop <-chan struct{}, base, name string) {
	ws, owner, n := "", "", 0
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if ws == "" || n >= 400 {
			if ws, owner = kill9Workspace(base, fmt.Sprintf("%s-%d", name, i)); ws == "" {
				time.Sleep(20 * time.Millisecond) // the service is down: it is being killed
				continue
			}
			n = 0
		}
		var batch []string
		for k := range 10 {
			batch = append(batch, fmt.Sprintf("%s-%d-%d@example.com", name, i, k))
		}
		n += len(batch)
		kill9Invite(base, ws, owner, batch)
	}
}

// waitForEveryEvent waits until the publisher's checkpoint reaches the
// store's last event (failing after a minute without progress), and then
// until the stream holds every event of the store: the service still runs,
// and its e-mails keep appending outcome events for a while. It checks
// that the stream holds each event id of the store exactly once and
// nothing else. The messages are read before the store, so every
// published event is in the store as read.
func waitForEveryEvent(t *testing.T, pool *pgxpool.Pool, space *natstest.Space) []natstest.Message {
	t.Helper()
	ctx := t.Context()
	last, stalled := uint64(0), time.Now().Add(time.Minute)
	for {
		var done bool
		err := pool.QueryRow(ctx, `
			SELECT coalesce((SELECT (commit_position, prepare_position) FROM projection_checkpoints WHERE name = $1)
			       = (SELECT (tx_id, position) FROM events ORDER BY tx_id DESC, position DESC LIMIT 1), false)`,
			broker.Name).Scan(&done)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		n, err := space.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != last {
			last, stalled = n, time.Now().Add(time.Minute)
		}
		if time.Now().After(stalled) {
			t.Fatalf("the stream holds %d messages and no more for a minute, and the publisher's checkpoint is behind the store", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		msgs := space.Messages(t)
		ids := storedEventIDs(t, pool)
		seen := map[string]int{}
		for _, m := range msgs {
			seen[m.ID]++
		}
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for _, id := range ids {
			switch n := seen[id]; n {
			case 1:
			case 0:
				t.Errorf("event %s is missing from the stream", id)
			default:
				t.Errorf("event %s is in the stream %d times", id, n)
			}
			delete(seen, id)
		}
		for id, n := range seen {
			t.Errorf("the stream holds %d messages with id %q, which is no event of the store", n, id)
		}
		return msgs
	}
}

// storedEventIDs reads the id of every event in the store.
func storedEventIDs(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return pgtest.Collect(t, pool, "stored event ids", pgx.RowTo[string], `SELECT event_id::text FROM events`)
}
