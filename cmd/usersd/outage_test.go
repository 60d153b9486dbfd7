package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testlog"
	"github.com/usersd/usersd/projections"
)

// Stops and outages (issue 12): a replica that is told to stop answers the
// requests it accepted, and a database outage answers 503 unavailable, not
// 500, with /readyz back to 200 only once the runners work again.

// TestAStopAnswersTheReadsItAccepted stops a replica while a read waits for
// its write (X-Consistent-With), and lets another runner, not the
// replica's, project that write only after the stop began: the replica
// must still see it and answer 200, not 504 projection_lag.
func TestAStopAnswersTheReadsItAccepted(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.New(t)
	// "Another replica": runners of the test hold every projection's lock
	// and apply nothing until unblocked, so the served replica's runners
	// stand by and only these make the write visible.
	unblock := make(chan struct{})
	src := gatedSource{gate: unblock, src: eventstore.Source{Store: pgstore.New(pool, pgstore.WithLogger(discardLogger())), Codec: testCodec(t, pool)}}
	holdCtx, release := context.WithCancel(context.Background())
	var holders sync.WaitGroup
	t.Cleanup(func() { release(); holders.Wait() })
	var names []string
	for _, p := range allProjections() {
		names = append(names, p.Name())
		r := projections.NewRunner(pool, p, src, projections.RunnerOptions{Logger: discardLogger(), LockRetry: 50 * time.Millisecond})
		holders.Go(func() { _ = r.Run(holdCtx) })
	}
	waitForLocks(t, dbURL, names)

	// However long the other runners take on a busy machine, the read
	// waits for them (the API's 5 s would make this test flaky, not
	// stronger: without the fix the stop cuts the read after 10 s anyway).
	s := startServingOn(t, map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"}, func(c *serveConfig) {
		c.consistencyTimeout = 5 * time.Minute
	})
	created := createWorkspace(t, s.base)

	// The read goes out and waits; once the replica shows it waiting (its
	// debug log), the stop begins. (A request the server has not read
	// when a stop begins is dropped unanswered, as net/http does; a client
	// sends it again elsewhere.)
	type answer struct {
		status int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		rq, _ := http.NewRequest("GET", s.base+"/v1/workspaces/"+created.WorkspaceID+"/users", nil)
		rq.Header.Set("Authorization", "Bearer "+userToken(created.OwnerUserID))
		rq.Header.Set("X-Consistent-With", created.Position)
		r, err := http.DefaultClient.Do(rq)
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		got <- answer{status: r.StatusCode, body: string(b)}
	}()
	s.waitForLog(t, "a read waits for a projection")
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	s.waitForLog(t, "msg=stopping")
	close(unblock) // the other replica's runners project the write now

	a := <-got
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, created.OwnerUserID) {
		t.Errorf("the read accepted before the stop: %d %s (%v); want 200 listing the owner %s", a.status, a.body, a.err, created.OwnerUserID)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve ended with %v", err)
	}
}

// servingOn is serveOn run in-process, logging at debug level to log.
type servingOn struct {
	base string
	stop func() error
	log  *testlog.Buffer
}

// startServingOn runs serveOn with the environment vars (and the
// configuration changed by opts) on a free port and waits until /readyz
// answers 200.
func startServingOn(t *testing.T, vars map[string]string, opts ...func(*serveConfig)) *servingOn {
	t.Helper()
	if _, ok := vars[envAuditSigningKey]; !ok {
		vars[envAuditSigningKey] = testAuditKey
	}
	if _, ok := vars[envKeyEncryptionKey]; !ok {
		vars[envKeyEncryptionKey] = testKEK
	}
	log := &testlog.Buffer{}
	e := &env{Stdout: io.Discard, Stderr: log, Getenv: func(k string) string { return vars[k] }}
	e.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := resolveDatabase(nil, e.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := readServeConfig(e, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(&cfg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &servingOn{base: "http://" + l.Addr().String(), log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveOn(ctx, e, db, cfg, l) }()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(time.Minute):
				stopErr = errors.New("serve did not stop within a minute")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		_ = s.stop()
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	})
	if err := waitReady(s.base, time.Minute, 50*time.Millisecond); err != nil {
		t.Fatalf("serve never became ready: %v", err)
	}
	return s
}

// waitForLog waits until the service's log holds text.
func (s *servingOn) waitForLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.log.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the service never logged %q", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatedSource follows src once gate is closed; until then a subscription
// hands over nothing.
type gatedSource struct {
	gate <-chan struct{}
	src  projections.Source
}

func (g gatedSource) Subscribe(ctx context.Context, from domain.Position, size int, h func(context.Context, projections.Batch) error) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.gate:
	}
	return g.src.Subscribe(ctx, from, size, h)
}

// TestADatabaseOutageAnswers503AndReadinessWaitsForTheRunners cuts a
// serving replica's database off (every connection ended, no new ones
// allowed: what a restart looks like to it) and brings it back. During the
// outage, requests answer 503 unavailable with Retry-After, never 500, and
// /readyz answers 503; after it, /readyz answers 200 only once every
// projection runner holds its lock again and works, and the API answers.
func TestADatabaseOutageAnswers503AndReadinessWaitsForTheRunners(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t)
	s := startServing(t, map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"})
	t.Cleanup(func() {
		if res := s.stop(); t.Failed() {
			t.Logf("serve log:\n%s", res.stderr)
		}
	})
	created := createWorkspace(t, s.base)
	owner := userToken(created.OwnerUserID)
	users := s.base + "/v1/workspaces/" + created.WorkspaceID + "/users"
	invitations := s.base + "/v1/workspaces/" + created.WorkspaceID + "/invitations"
	if st, body := readConsistent(t, users, owner, created.Position); st != 200 {
		t.Fatalf("list users before the outage: %d %s", st, body)
	}

	restore := cutOff(t, dbURL)
	// Every answer during the outage is 503: unavailable (with
	// Retry-After) from the API, not_ready from /readyz.
	for i := range 5 {
		for _, c := range []struct{ method, url, body string }{
			{"GET", users, ""},
			{"POST", invitations, fmt.Sprintf(`{"emails":["outage%d@example.com"],"role":"Editor"}`, i)},
		} {
			st, body, h := call(t, c.method, c.url, owner, "", c.body)
			if st != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"unavailable"`) || h.Get("Retry-After") == "" {
				t.Errorf("%s %s during the outage: %d %s (Retry-After %q); want 503 unavailable with Retry-After", c.method, c.url, st, body, h.Get("Retry-After"))
			}
		}
		if st, body, _ := call(t, "GET", s.base+"/readyz", "", "", ""); st != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the outage: %d %s; want 503", st, body)
		}
	}
	// A read waiting for a position in vain is unavailable too, not
	// projection_lag: the read models cannot be followed.
	if st, body, h := call(t, "GET", users, owner, "999999999999-0", ""); st != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"unavailable"`) || h.Get("Retry-After") == "" {
		t.Errorf("a read waiting for its write during the outage: %d %s (Retry-After %q); want 503 unavailable", st, body, h.Get("Retry-After"))
	}
	restore()

	// Ready again only with every projection's runner holding its lock:
	// a ping that works is not enough.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, body, _ := call(t, "GET", s.base+"/readyz", "", "", "")
		if st == http.StatusOK {
			break
		}
		if st != http.StatusServiceUnavailable {
			t.Fatalf("/readyz after the outage: %d %s", st, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 after the outage: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	names := []string{messaging.OutboxName}
	for _, p := range allProjections() {
		names = append(names, p.Name())
	}
	if held := locksHeld(t, dbURL, names); len(held) != len(names) {
		t.Errorf("/readyz answered 200 while the runners held only the locks of %v; want all of %v", held, names)
	}

	// And the service works again: a write, then a read that waits for it.
	st, body, _ := call(t, "POST", invitations, owner, "", `{"emails":["after@example.com"],"role":"Editor"}`)
	if st != 200 {
		t.Fatalf("invite after the outage: %d %s", st, body)
	}
	var inv struct{ Position string }
	_ = json.Unmarshal([]byte(body), &inv)
	if st, body := readConsistent(t, users, owner, inv.Position); st != 200 || !strings.Contains(body, "after@example.com") {
		t.Errorf("list users after the outage: %d %s", st, body)
	}
}

// cutOff ends every connection to the test database at dbURL and refuses
// new ones, as a database restart looks to a client; restore (also run at
// the test's end) lets connections in again. The server itself is shared
// by every test, so only this database goes down.
func cutOff(t *testing.T, dbURL string) (restore func()) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
				t.Errorf("restore connections to %s: %v", name, err)
			}
			_ = admin.Close(ctx)
		})
	}
	t.Cleanup(restore)
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Fatal(err)
	}
	return restore
}

// locksHeld answers which of the named projections' runners hold their
// advisory lock in the database at dbURL, from their connections'
// application_name (projections.AppName). It connects anew: an outage
// ends pooled connections.
func locksHeld(t *testing.T, dbURL string, names []string) []string {
	t.Helper()
	var apps []string
	for _, n := range names {
		apps = append(apps, projections.AppName("projection", n))
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	return pgtest.Collect(t, conn, "projection locks held", pgx.RowTo[string], `
		SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() AND a.application_name = ANY($1)
		ORDER BY 1`, apps)
}

// waitForLocks waits until the named projections' locks are held.
func waitForLocks(t *testing.T, dbURL string, names []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(locksHeld(t, dbURL, names)) < len(names) {
		if time.Now().After(deadline) {
			t.Fatalf("the runners did not take the locks of %v", names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type createdWorkspace struct {
	WorkspaceID, OwnerUserID, Position string
}

func createWorkspace(t *testing.T, base string) createdWorkspace {
	t.Helper()
	st, body, _ := call(t, "POST", base+"/v1/workspaces", systemToken(), "", `{"name":"Outages","owner":{"email":"owner@outage.test","name":"O"}}`)
	var c createdWorkspace
	if err := json.Unmarshal([]byte(body), &c); st != 201 || err != nil || c.Position == "" {
		t.Fatalf("create workspace: %d %s (%v)", st, body, err)
	}
	return c
}

// readConsistent reads url as of pos, again while the answer is 504
// projection_lag (a busy machine), for up to two minutes.
func readConsistent(t *testing.T, url, token, pos string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, body, _ := call(t, "GET", url, token, pos, "")
		if st != http.StatusGatewayTimeout || time.Now().After(deadline) {
			return st, body
		}
	}
}

// call makes one request and fails the test on a 500 or no answer.
func call(t *testing.T, method, url, token, consistentWith, body string) (int, string, http.Header) {
	t.Helper()
	r, err := http.DefaultClient.Do(apiRequest(t, method, url, token, consistentWith, body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	if r.StatusCode == http.StatusInternalServerError {
		t.Errorf("%s %s: 500 %s", method, url, b)
	}
	return r.StatusCode, string(b), r.Header
}

// TestAStopEndsFollowedFeeds: a followed event feed never ends by itself;
// the stop ends it with a last heartbeat at once, rather than waiting out
// the grace period and cutting it.
func TestAStopEndsFollowedFeeds(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t)
	s := startServingOn(t, map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"})
	created := createWorkspace(t, s.base)
	rq, _ := http.NewRequest("GET", s.base+"/v1/events?follow=true&after="+created.Position, nil)
	rq.Header.Set("Authorization", "Bearer "+systemToken())
	r, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events: %d", r.StatusCode)
	}
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("serve ended with %v", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("the feed was cut: %v (%q)", err, body)
	}
	var last struct{ Type, Position string }
	if lines := strings.Split(strings.TrimSpace(string(body)), "\n"); json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || last.Type != "heartbeat" {
		t.Errorf("the feed ended with %q, want a last heartbeat", body)
	}
	if took := time.Since(start); strings.Contains(s.log.String(), "requests still running") {
		t.Errorf("the stop waited %s for the feed and cut it", took)
	}
}
