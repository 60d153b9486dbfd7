package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/url"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/migrations"
)

// TestMigrateConcurrently starts several replicas' migrations at once on an
// empty database: all succeed and the schema is applied once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := emptyDatabase(t)

	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { errs[i] = postgres.Migrate(ctx, dbURL) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Migrate: got %v, want no error from any replica", err)
	}

	pool, err := postgres.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer pool.Close()
	var applied, events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatalf("count applied migrations: %v", err)
	}
	files, _ := fs.Glob(migrations.FS, "*.sql")
	if applied != len(files) {
		t.Errorf("applied migrations: got %d, want %d (one per file, once)", applied, len(files))
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&events); err != nil {
		t.Errorf("events table: got %v, want it to exist", err)
	}
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		t.Errorf("Migrate again: got %v, want nothing to do", err)
	}
}

func TestConnectFailsOnBadURL(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse(pgtest.AdminURL())
	u.Path = "/usersd_no_such_database"
	if pool, err := postgres.Connect(context.Background(), u.String()); err == nil {
		pool.Close()
		t.Fatalf("Connect to a missing database: got no error, want one")
	}
}

// emptyDatabase creates a database without any migration, dropped at the end.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatalf("connect to admin database: %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "usersd_test_empty_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(pgtest.AdminURL())
	u.Path = "/" + name
	return u.String()
}
