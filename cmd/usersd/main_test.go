package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/testlog"
)

// result is what one run of usersd produced.
type result struct {
	code           int
	stdout, stderr string
}

// runUsersd runs the command line args with the environment vars (nothing
// else of the real environment is visible).
func runUsersd(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr testlog.Buffer
	e := &env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), args, e)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		wantCode   int
		wantStdout []string // substrings
		wantStderr []string
	}{
		{name: "no command", args: nil, wantCode: exitUsage,
			wantStderr: []string{"Usage: usersd <command>", "migrate", "version"}},
		{name: "help", args: []string{"help"}, wantCode: exitOK,
			wantStdout: []string{"Usage: usersd <command>", "migrate", "version", "help"}},
		{name: "-h", args: []string{"-h"}, wantCode: exitOK, wantStdout: []string{"Commands:"}},
		{name: "help migrate", args: []string{"help", "migrate"}, wantCode: exitOK,
			wantStdout: []string{"Usage: usersd migrate", "-database-url", "DATABASE_URL"}},
		{name: "help unknown command", args: []string{"help", "nope"}, wantCode: exitUsage,
			wantStderr: []string{`unknown command "nope"`}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: exitUsage,
			wantStderr: []string{`unknown command "frobnicate"`, "usersd help"}},
		{name: "migrate -h", args: []string{"migrate", "-h"}, wantCode: exitOK,
			wantStdout: []string{"Usage: usersd migrate", "-database-url", "DATABASE_URL", defaultDatabaseURL}},
		{name: "migrate unknown flag", args: []string{"migrate", "-nope"}, wantCode: exitUsage,
			wantStderr: []string{"-nope", "usersd migrate -h"}},
		{name: "migrate extra argument", args: []string{"migrate", "now"}, wantCode: exitUsage,
			wantStderr: []string{`"now"`}},
		{name: "migrate bad DATABASE_URL", vars: map[string]string{"DATABASE_URL": "postgres://u:secret@host:notaport/db"},
			args: []string{"migrate"}, wantCode: exitUsage, wantStderr: []string{"DATABASE_URL is not a valid"}},
		{name: "migrate bad flag URL", args: []string{"migrate", "-database-url", "postgres://host:99999/db"},
			wantCode: exitUsage, wantStderr: []string{"-database-url is not a valid"}},
		{name: "migrate empty flag URL", args: []string{"migrate", "-database-url="},
			wantCode: exitUsage, wantStderr: []string{"-database-url is empty"}},
		{name: "bad log level", vars: map[string]string{"USERSD_LOG_LEVEL": "loud"}, args: []string{"version"},
			wantCode: exitUsage, wantStderr: []string{"USERSD_LOG_LEVEL"}},
		{name: "version", args: []string{"version"}, wantCode: exitOK, wantStdout: []string{"usersd ", "go1."}},
		{name: "version -h", args: []string{"version", "-h"}, wantCode: exitOK, wantStdout: []string{"Usage: usersd version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := runUsersd(t, tt.vars, tt.args...)
			if got.code != tt.wantCode {
				t.Errorf("usersd %q: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, got.code, tt.wantCode, got.stdout, got.stderr)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(got.stdout, want) {
					t.Errorf("usersd %q: stdout does not contain %q; got:\n%s", tt.args, want, got.stdout)
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(got.stderr, want) {
					t.Errorf("usersd %q: stderr does not contain %q; got:\n%s", tt.args, want, got.stderr)
				}
			}
			if strings.Contains(got.stdout+got.stderr, "secret") {
				t.Errorf("usersd %q: printed the password from the URL:\n%s%s", tt.args, got.stdout, got.stderr)
			}
		})
	}
}

func TestResolveDatabase(t *testing.T) {
	t.Parallel()
	const envURL = "postgres://env@db.example:5433/fromenv"
	const flagURL = "postgres://flag@127.0.0.1:5432/fromflag"
	tests := []struct {
		name        string
		env         string
		args        []string
		wantURL     string
		wantSource  string
		wantCreate  bool
		wantErrPart string
	}{
		{name: "neither: default, created", wantURL: defaultDatabaseURL, wantSource: "default", wantCreate: true},
		{name: "env", env: envURL, wantURL: envURL, wantSource: "DATABASE_URL"},
		{name: "flag overrides env", env: envURL, args: []string{"-database-url", flagURL}, wantURL: flagURL, wantSource: "-database-url"},
		{name: "flag alone", args: []string{"-database-url=" + flagURL}, wantURL: flagURL, wantSource: "-database-url"},
		{name: "key-value form", env: "host=127.0.0.1 dbname=kv user=postgres", wantURL: "host=127.0.0.1 dbname=kv user=postgres", wantSource: "DATABASE_URL"},
		{name: "bad env", env: "mysql://nope", wantErrPart: "DATABASE_URL is not a valid PostgreSQL connection URL"},
		{name: "bad flag beats good env", env: envURL, args: []string{"-database-url", "postgres://h:0x/db"}, wantErrPart: "-database-url is not a valid"},
		{name: "empty flag", env: envURL, args: []string{"-database-url", " "}, wantErrPart: "-database-url is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			databaseFlag(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("parse %q: %v", tt.args, err)
			}
			getenv := func(k string) string {
				if k == envDatabaseURL {
					return tt.env
				}
				return ""
			}
			db, err := resolveDatabase(fs, getenv)
			if tt.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrPart) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErrPart)
				}
				if _, ok := err.(*usageError); !ok {
					t.Errorf("got error of type %T, want *usageError (exit code 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if db.URL != tt.wantURL || db.Source != tt.wantSource || db.CreateIfMissing != tt.wantCreate {
				t.Errorf("got URL %q from %s (create if missing: %v), want %q from %s (%v)",
					db.URL, db.Source, db.CreateIfMissing, tt.wantURL, tt.wantSource, tt.wantCreate)
			}
		})
	}
}

func TestDatabaseStringHidesPassword(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	databaseFlag(fs)
	if err := fs.Parse([]string{"-database-url", "postgres://alice:s3cret@db.example:6543/users"}); err != nil {
		t.Fatal(err)
	}
	db, err := resolveDatabase(fs, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := db.String(), "alice@db.example:6543/users"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
}

// waitReady asks base's /readyz every interval until it answers 200 (nil)
// or timeout has passed (why it was not ready).
func waitReady(base string, timeout, every time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		r, err := http.Get(base + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("/readyz answers %d", r.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// apiRequest is a request to the API, with the bearer token, the
// X-Consistent-With position and a JSON body, each when not empty.
func apiRequest(t testing.TB, method, url, token, consistentWith, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rq, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		rq.Header.Set("Authorization", "Bearer "+token)
	}
	if consistentWith != "" {
		rq.Header.Set("X-Consistent-With", consistentWith)
	}
	if body != "" {
		rq.Header.Set("Content-Type", "application/json")
	}
	return rq
}

// testToken is a bearer token with claims, signed with testJWTSecret and
// valid for ten minutes.
func testToken(claims jwt.MapClaims) string {
	claims["exp"] = time.Now().Add(10 * time.Minute).Unix()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testJWTSecret))
	if err != nil {
		panic(err) // HS256 with a fixed key does not fail
	}
	return tok
}

// systemToken is the platform's token.
func systemToken() string {
	return testToken(jwt.MapClaims{"sub": uuid.NewString(), "scope": "system"})
}

// userToken is the token of the user sub.
func userToken(sub string) string { return testToken(jwt.MapClaims{"sub": sub}) }
