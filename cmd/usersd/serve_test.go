package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/testlog"
	"github.com/usersd/usersd/internal/testnet"
	"github.com/usersd/usersd/projections/audit"
)

const testJWTSecret = "serve-test-secret-serve-test-secret-0123"

// testAuditKey is a signing key's seed (32 bytes, base64url).
const testAuditKey = "c2VydmUtdGVzdC1hdWRpdC1rZXktc2VydmUtdGVzdC0"

// testKEK is a key-encryption key (32 bytes, base64url).
const testKEK = "c2VydmUtdGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMDE"

func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	dbURL := "postgres://postgres@127.0.0.1:5432/whatever?sslmode=disable"
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"secret missing with DATABASE_URL", map[string]string{"DATABASE_URL": dbURL}, "USERSD_JWT_SECRET is not set"},
		{"secret missing with ESDB_URL", map[string]string{"ESDB_URL": "esdb://127.0.0.1:1?tls=false"}, "USERSD_JWT_SECRET is not set: it is required with ESDB_URL"},
		{"short secret", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": "short"}, "USERSD_JWT_SECRET is 5 bytes long"},
		{"bad TTL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_INVITATION_TTL": "a week"}, "USERSD_INVITATION_TTL"},
		{"negative TTL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_INVITATION_TTL": "-1h"}, "USERSD_INVITATION_TTL"},
		{"zero TTL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_INVITATION_TTL": "0s"}, "USERSD_INVITATION_TTL"},
		{"bad proxy", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, "USERSD_TRUSTED_PROXIES"},
		// Outside the embedded default, the development mailbox (working
		// links in plain text) is never a silent fallback.
		{"no mail configuration with DATABASE_URL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret}, "set SMTP_URL (smtp://host:port) to send invitation e-mails, or USERSD_DEV_MAILBOX=true"},
		{"bad metrics address", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_METRICS_ADDR": "9090"}, `USERSD_METRICS_ADDR="9090" is not a listen address`},
		{"metrics on the API's address", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_HTTP_ADDR": ":9999", "USERSD_METRICS_ADDR": ":9999"}, "is the address of the API"},
		{"no mail configuration with ESDB_URL", map[string]string{"ESDB_URL": "esdb://127.0.0.1:1?tls=false", "USERSD_JWT_SECRET": testJWTSecret}, "with ESDB_URL set, set SMTP_URL"},
		// Outside the embedded default, the audit heads must be signed with
		// a key the operator keeps.
		{"no audit signing key with DATABASE_URL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"},
			"USERSD_AUDIT_SIGNING_KEY is not set: it is required with DATABASE_URL"},
		{"no audit signing key with ESDB_URL", map[string]string{"ESDB_URL": "esdb://127.0.0.1:1?tls=false", "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"},
			"USERSD_AUDIT_SIGNING_KEY is not set: it is required with ESDB_URL"},
		{"short audit signing key", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey[:40]},
			"USERSD_AUDIT_SIGNING_KEY is not an Ed25519 seed"},
		{"bad previous key", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_AUDIT_PREVIOUS_KEYS": "8BlUlsnZ3NXOTN6qMf6dFBDPQnq6f8Q1eHtzMXwdTLM, not-a-key"}, "USERSD_AUDIT_PREVIOUS_KEYS: item 2"},
		// Outside the embedded default, the personal data keys are wrapped
		// under a key the operator keeps.
		{"no key-encryption key with DATABASE_URL", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey},
			"USERSD_KEY_ENCRYPTION_KEY is not set: it is required with DATABASE_URL"},
		{"no key-encryption key with ESDB_URL", map[string]string{"ESDB_URL": "esdb://127.0.0.1:1?tls=false", "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey},
			"USERSD_KEY_ENCRYPTION_KEY is not set: it is required with ESDB_URL"},
		{"short key-encryption key", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK[:40]}, "USERSD_KEY_ENCRYPTION_KEY is 30 bytes, want 32"},
		{"bad previous key-encryption key", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK, "USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS": testAuditKey + ", nope"}, "USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS: item 2 is 3 bytes"},
		{"bad poison retention", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK, "USERSD_POISON_RETENTION": "30 days"}, `USERSD_POISON_RETENTION="30 days": want a Go duration`},
		{"zero retention interval", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK, "USERSD_RETENTION_INTERVAL": "0"}, `USERSD_RETENTION_INTERVAL="0": want a positive Go duration`},
		{"NATS URL without a scheme", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK, "USERSD_NATS_URL": "127.0.0.1:4222"}, "USERSD_NATS_URL: server 1 of 1"},
		{"bad webhook setting", map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true", "USERSD_AUDIT_SIGNING_KEY": testAuditKey,
			"USERSD_KEY_ENCRYPTION_KEY": testKEK, "USERSD_WEBHOOK_ALLOW_PRIVATE": "sometimes"}, `USERSD_WEBHOOK_ALLOW_PRIVATE="sometimes": want true or false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runUsersd(t, tt.vars, "serve")
			if got.code != exitUsage || !strings.Contains(got.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", got.code, got.stderr, exitUsage, tt.want)
			}
			if strings.Contains(got.stderr, testJWTSecret) || strings.Contains(got.stderr, testAuditKey[:40]) || strings.Contains(got.stderr, testKEK[:40]) {
				t.Errorf("a secret was printed: %s", got.stderr)
			}
		})
	}
}

func TestInvitationTTL(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]time.Duration{"": 168 * time.Hour, "72h": 72 * time.Hour, " 30m ": 30 * time.Minute} {
		got, err := invitationTTL(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("USERSD_INVITATION_TTL=%q: %v, %v; want %v", v, got, err, want)
		}
	}
}

func TestWebhookAllowPrivate(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{"": false, "true": true, " TRUE ": true, "1": true, "false": false, "0": false} {
		got, err := webhookAllowPrivate(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("USERSD_WEBHOOK_ALLOW_PRIVATE=%q: %v, %v; want %v", v, got, err, want)
		}
	}
	if _, err := webhookAllowPrivate(func(string) string { return "yes please" }); err == nil {
		t.Error("USERSD_WEBHOOK_ALLOW_PRIVATE=yes please: no error")
	}
}

// onDevDefault is the embedded default's setting for the development
// secrets: e reads vars, which name a fresh $XDG_CONFIG_HOME, dir.
func onDevDefault(t *testing.T) (dir string, vars map[string]string, e *env, db database) {
	t.Helper()
	dir = t.TempDir()
	vars = map[string]string{"XDG_CONFIG_HOME": dir}
	e = &env{Getenv: func(k string) string { return vars[k] }, Log: discardLogger()}
	return dir, vars, e, database{Source: "default", CreateIfMissing: true}
}

// testKeptPerUser checks a development secret of the embedded default,
// which read reads (id tells one from another): a second start reads the
// first one again, kept in dir's usersd/<file> with mode 0600, and once
// others may read that file it is refused. It answers the first.
func testKeptPerUser[T any](t *testing.T, dir, file string, read func() (T, error), id func(T) string) T {
	t.Helper()
	first, err := read()
	if err != nil {
		t.Fatalf("first %s: %v", file, err)
	}
	if id(first) == "" {
		t.Fatalf("first %s: none made", file)
	}
	second, err := read()
	if err != nil {
		t.Fatalf("second start: %s: %v", file, err)
	}
	if id(second) != id(first) {
		t.Fatalf("second start: %s %s, want the first one, %s", file, id(second), id(first))
	}
	path := filepath.Join(dir, "usersd", file)
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("%s file: %v, %v; want mode 0600", file, info, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "may be read by others") {
		t.Errorf("a %s file others may read: got %v, want it refused", file, err)
	}
	return first
}

func TestDevSecretIsKeptPerUser(t *testing.T) {
	t.Parallel()
	dir, _, e, db := onDevDefault(t)
	first := testKeptPerUser(t, dir, "dev-jwt-secret", func() ([]byte, error) { return jwtSecret(e, db) }, func(b []byte) string { return string(b) })
	if len(first) < 32 {
		t.Errorf("first secret: %q, want at least 32 bytes", first)
	}
}

// TestDevAuditKeyIsKeptPerUser: the embedded default makes its audit
// signing key once and keeps it like the JWT secret (mode 0600, refused
// once others may read it); outside it the key must be configured.
func TestDevAuditKeyIsKeptPerUser(t *testing.T) {
	t.Parallel()
	dir, vars, e, db := onDevDefault(t)
	first := testKeptPerUser(t, dir, "dev-audit-signing-key", func() (*audit.Signer, error) { return auditSigner(e, db) }, (*audit.Signer).KeyID)

	vars[envAuditSigningKey] = testAuditKey
	vars[envAuditPreviousKeys] = first.Keys()[0].PublicKey
	configured, err := auditSigner(e, db)
	if err != nil {
		t.Fatal(err)
	}
	keys := configured.Keys()
	if len(keys) != 2 || keys[0].KeyID == first.KeyID() || !keys[0].Current || keys[1].KeyID != first.KeyID() || keys[1].Current {
		t.Errorf("keys with %s and %s: got %+v, want the configured key current, then the previous one", envAuditSigningKey, envAuditPreviousKeys, keys)
	}
}

// serving is `usersd serve` run in-process on a free port.
type serving struct {
	base string
	// stop ends it and answers how it exited.
	stop func() result
}

// startServing runs `usersd serve` with the environment vars (a free
// USERSD_HTTP_ADDR is added) and waits until /readyz answers 200.
func startServing(t testing.TB, vars map[string]string) serving {
	t.Helper()
	addr := testnet.FreeAddr(t)
	vars["USERSD_HTTP_ADDR"] = addr
	if _, ok := vars[envAuditSigningKey]; !ok {
		vars[envAuditSigningKey] = testAuditKey
	}
	if _, ok := vars[envKeyEncryptionKey]; !ok {
		vars[envKeyEncryptionKey] = testKEK
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		var stdout, stderr testlog.Buffer
		e := &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
		code := run(ctx, []string{"serve"}, e)
		done <- result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}()
	var stopped result
	var stopOnce sync.Once
	s := serving{base: "http://" + addr, stop: func() result {
		// Once: a deferred stop may follow the test's own.
		stopOnce.Do(func() {
			cancel()
			select {
			case stopped = <-done:
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop")
			}
		})
		return stopped
	}}
	if err := waitReady(s.base, 30*time.Second, 100*time.Millisecond); err != nil {
		t.Fatalf("serve never became ready: %v\n%s", err, s.stop().stderr)
	}
	return s
}

// TestServeAnswersTheAPI starts usersd serve on a fresh database, with its
// two roles, and asks it for health, readiness, metrics and a workspace.
func TestServeAnswersTheAPI(t *testing.T) {
	t.Parallel()
	vars := twoRoles(t)
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"] = testJWTSecret, "true"
	s := startServing(t, vars)
	base := s.base
	for _, p := range []string{"/healthz", "/metrics"} {
		r, err := http.Get(base + p)
		if err != nil || r.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", p, r, err)
		}
		if r != nil {
			r.Body.Close()
		}
	}
	// One listener, two handlers: the API's paths go to the API, the rest
	// to the web UI.
	for _, tt := range []struct{ path, wantType string }{
		{"/", "text/html"},
		{"/accept?token=x", "text/html"},
		{"/assets/app.js", "text/javascript"},
		{"/openapi.yaml", "yaml"},
		{"/v1/nope", "application/problem+json"},
	} {
		r, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.wantType)
		}
		isUI := tt.wantType == "text/html" || tt.wantType == "text/javascript"
		if isUI && r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no Content-Security-Policy on a page of the UI", tt.path)
		}
	}
	tok := systemToken()
	rq, _ := http.NewRequest("POST", base+"/v1/workspaces", strings.NewReader(`{"name":"Served","owner":{"email":"o@served.test","name":"O"}}`))
	rq.Header.Set("Authorization", "Bearer "+tok)
	rq.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 201 || !strings.Contains(string(body), `"position"`) {
		t.Errorf("create workspace: %d %s", r.StatusCode, body)
	}
	res := s.stop()
	if res.code != exitOK {
		t.Errorf("serve exited %d:\n%s", res.code, res.stderr)
	}
	// The development mailbox was asked for outside the embedded default:
	// start says, once, what it exposes.
	if n := strings.Count(res.stderr, "level=WARN msg=\"mail: USERSD_DEV_MAILBOX=true"); n != 1 {
		t.Errorf("serve with USERSD_DEV_MAILBOX=true and DATABASE_URL logged %d warnings about the development mailbox, want 1:\n%s", n, res.stderr)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every answer of usersd serve carries X-Content-Type-Options: nosniff:
// the web UI's pages and files, the API's answers and problems, the
// operations endpoints, unknown paths and methods.
func TestServeAnswersAreNosniff(t *testing.T) {
	t.Parallel()
	vars := twoRoles(t)
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"] = testJWTSecret, "true"
	s := startServing(t, vars)
	defer s.stop()
	for _, rq := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/audit"}, {"GET", "/accept?token=x"}, {"GET", "/assets/app.js"}, {"GET", "/no-such-page"},
		{"POST", "/"}, {"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/metrics"}, {"GET", "/openapi.yaml"},
		{"GET", "/v1/nope"}, {"PATCH", "/v1/workspaces"}, {"GET", "/v1/me/workspaces"}, {"HEAD", "/healthz"},
	} {
		hr, err := http.NewRequest(rq.method, s.base+rq.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", rq.method, rq.path, r.StatusCode, got)
		}
	}
}

// With USERSD_METRICS_ADDR, /metrics is served there and only there: the
// API's address answers 404, so that it need not be public.
func TestServeMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	vars := twoRoles(t)
	metricsAddr := testnet.FreeAddr(t)
	vars["USERSD_JWT_SECRET"], vars["USERSD_DEV_MAILBOX"], vars["USERSD_METRICS_ADDR"] = testJWTSecret, "true", metricsAddr
	s := startServing(t, vars)
	defer s.stop()
	get := func(url string) (int, string, http.Header) {
		t.Helper()
		r, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b), r.Header
	}
	if status, _, _ := get(s.base + "/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API's address: %d, want 404", status)
	}
	// A use case of the application, counted by its decorator.
	r, err := http.Post(s.base+"/v1/invitations/lookup", "application/json", strings.NewReader(`{"token":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	status, body, h := get("http://" + metricsAddr + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, `usersd_http_requests_total{method="GET",route="unmatched",status="404"}`) {
		t.Errorf("GET /metrics on %s: %d, want 200 counting the API's requests:\n%s", metricsAddr, status, body)
	}
	if want := `usersd_command_outcomes_total{command="lookup_invitation",outcome="invalid_token"} 1`; !strings.Contains(body, want) {
		t.Errorf("GET /metrics on %s: no %s:\n%s", metricsAddr, want, body)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET /metrics on %s: no X-Content-Type-Options: nosniff", metricsAddr)
	}
	for _, p := range []string{"/", "/healthz", "/v1/me/workspaces", "/openapi.yaml"} {
		if status, _, h := get("http://" + metricsAddr + p); status != http.StatusNotFound || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s on the metrics address: %d, want 404 with nosniff", p, status)
		}
	}
	if res := s.stop(); res.code != exitOK {
		t.Errorf("serve exited %d:\n%s", res.code, res.stderr)
	}
}
