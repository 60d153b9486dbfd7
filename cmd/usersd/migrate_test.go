package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"io/fs"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/testlog"
	"github.com/usersd/usersd/migrations"
)

// TestMigrateCreatesAndMigrates runs what `usersd migrate` does with the
// default configuration, on a database of its own: the database is created,
// every migration applied, and a second run changes nothing.
func TestMigrateCreatesAndMigrates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	name := "usersd_test_cmd_" + randomHex(t, 8)
	dbURL := withDatabase(t, pgtest.AdminURL(), name)
	t.Cleanup(func() { dropDatabase(t, name) })

	db := resolved(t, dbURL)
	db.CreateIfMissing = true // as for the default URL
	var stderr testlog.Buffer
	logger, err := newLogger(&stderr, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	e := &env{Stdout: &stderr, Stderr: &stderr, Getenv: func(string) string { return "" }, Log: logger}

	if err := migrate(ctx, e, db); err != nil {
		t.Fatalf("first migrate: got %v, want no error; log:\n%s", err, stderr.String())
	}
	if created, err := db.ensureExists(ctx); err != nil || created {
		t.Errorf("ensureExists after migrate: got created=%v, err=%v; want false, nil", created, err)
	}
	if err := migrate(ctx, e, db); err != nil {
		t.Fatalf("second migrate: got %v, want no error", err)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to migrated database: %v", err)
	}
	defer conn.Close(context.Background())
	var applied int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatalf("count applied migrations: %v", err)
	}
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(files) {
		t.Errorf("applied migrations: got %d, want %d (each file once)", applied, len(files))
	}
}

// TestMigrateCommandExitCodes runs the migrate subcommand on an explicit URL:
// success on a fresh database, failure (exit 1) on a database that does not
// exist, as only the default database is created.
func TestMigrateCommandExitCodes(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t) // already migrated: nothing to do, still exit 0
	if got := runUsersd(t, nil, "migrate", "-database-url", dbURL); got.code != exitOK {
		t.Errorf("migrate an up-to-date database: exit code %d, want 0; stderr:\n%s", got.code, got.stderr)
	}

	missing := withDatabase(t, pgtest.AdminURL(), "usersd_test_missing_"+randomHex(t, 8))
	got := runUsersd(t, map[string]string{"DATABASE_URL": missing}, "migrate")
	if got.code != exitFailure {
		t.Errorf("migrate a missing database: exit code %d, want %d; stderr:\n%s", got.code, exitFailure, got.stderr)
	}
}

func resolved(t *testing.T, dbURL string) database {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	databaseFlag(fs)
	if err := fs.Parse([]string{"-database-url", dbURL}); err != nil {
		t.Fatal(err)
	}
	db, err := resolveDatabase(fs, func(string) string { return "" })
	if err != nil {
		t.Fatalf("resolve %s: %v", dbURL, err)
	}
	return db
}

func withDatabase(t *testing.T, rawURL, name string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s: %v", pgtest.EnvAdminURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

func dropDatabase(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Errorf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop %s: %v", name, err)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
