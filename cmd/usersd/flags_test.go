package main

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// Every subcommand reads its flags after the subcommand's words, as the
// README writes them (`usersd audit verify -workspace ID`). A subcommand
// without a row here fails the test.
func TestFlagsAfterTheSubcommand(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t)
	ws := uuid.New()
	rows := map[string]struct {
		vars       map[string]string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		// serve would run until stopped: a bad value shows the flag was read.
		"serve":   {args: []string{"serve", "-http-addr", "nonsense"}, wantCode: exitUsage, wantStderr: `-http-addr="nonsense" is not a listen address`},
		"migrate": {args: []string{"migrate", "-database-url", dbURL}, wantCode: exitOK},
		"status":  {args: []string{"status", "-database-url", dbURL}, wantCode: exitOK, wantStdout: "none recorded"},
		"events": {args: []string{"events", "export", "-from", "2000-01-01T00:00:00Z", "-after", "0-0", "-types", "UserInvited", "-database-url", dbURL},
			wantCode: exitOK, wantStderr: "exported 0 events"},
		"projections": {vars: map[string]string{envKeyEncryptionKey: testKEK},
			args: []string{"projections", "rebuild", "audit", "-database-url", dbURL}, wantCode: exitOK},
		"audit": {args: []string{"audit", "verify", "-workspace", ws.String(), "-database-url", dbURL},
			wantCode: exitOK, wantStdout: ws.String() + " ok (0 entries)"},
		"keys": {vars: map[string]string{envKeyEncryptionKey: testKEK},
			args: []string{"keys", "rotate", "-database-url", dbURL}, wantCode: exitOK, wantStderr: "re-wrapped 0 keys"},
		"token": {vars: map[string]string{envDatabaseURL: dbURL, envJWTSecret: testJWTSecret},
			args: []string{"token", "-system", "-ttl", "1m"}, wantCode: exitOK, wantStdout: "eyJ"},
		"version": {args: []string{"version", "-h"}, wantCode: exitOK, wantStdout: "Usage: usersd version"},
	}
	for _, c := range subcommands() {
		if _, ok := rows[c.Name]; !ok {
			t.Errorf("subcommand %q has no row: add one that passes its flags after the subcommand", c.Name)
		}
	}
	// One after the other: they share a database.
	for name, row := range rows {
		got := runUsersd(t, row.vars, row.args...)
		if got.code != row.wantCode || !strings.Contains(got.stdout, row.wantStdout) || !strings.Contains(got.stderr, row.wantStderr) {
			t.Errorf("%s: usersd %q: exit %d, want %d with stdout containing %q and stderr %q\nstdout:\n%s\nstderr:\n%s",
				name, row.args, got.code, row.wantCode, row.wantStdout, row.wantStderr, got.stdout, got.stderr)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args           []string
		wantPositional []string
		wantWorkspace  string
		wantAll        bool
	}{
		{args: []string{"verify", "-workspace", "W"}, wantPositional: []string{"verify"}, wantWorkspace: "W"},
		{args: []string{"-workspace", "W", "verify"}, wantPositional: []string{"verify"}, wantWorkspace: "W"},
		{args: []string{"rebuild", "a", "-all", "b"}, wantPositional: []string{"rebuild", "a", "b"}, wantAll: true},
		{args: []string{"rebuild", "--", "-all", "b"}, wantPositional: []string{"rebuild", "-all", "b"}},
		{args: nil, wantPositional: nil},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		workspace := fs.String("workspace", "", "")
		all := fs.Bool("all", false, "")
		got, err := parseInterspersed(fs, tt.args)
		if err != nil || !slices.Equal(got, tt.wantPositional) || *workspace != tt.wantWorkspace || *all != tt.wantAll {
			t.Errorf("%q: positional %q, -workspace %q, -all %v, err %v; want %q, %q, %v",
				tt.args, got, *workspace, *all, err, tt.wantPositional, tt.wantWorkspace, tt.wantAll)
		}
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	if _, err := parseInterspersed(fs, []string{"verify", "-nope"}); err == nil {
		t.Errorf("an unknown flag after a positional argument was accepted")
	}
}
