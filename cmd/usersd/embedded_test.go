package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/postgres/embedded/embeddedtest"
	"github.com/usersd/usersd/internal/testlog"
)

// unreachableDefault is the embedded default's database, on an address
// where no server answers, so that ensureServer falls back to the private
// cluster.
func unreachableDefault(t *testing.T) database {
	t.Helper()
	const u = "postgres://postgres@127.0.0.1:1/usersd?sslmode=disable"
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	return database{URL: u, Source: "default", CreateIfMissing: true, config: cfg}
}

// TestDefaultFallsBackToPrivateCluster: with no server at the default
// address, the embedded default runs on a private cluster, started for the
// command and stopped after it (the cluster's own lifecycle is tested in
// adapters/postgres/embedded).
func TestDefaultFallsBackToPrivateCluster(t *testing.T) {
	t.Parallel()
	data := filepath.Join(embeddedtest.Dir(t), "data")
	e := &env{Stdout: &testlog.Buffer{}, Stderr: &testlog.Buffer{}, Log: discardLogger(), Getenv: func(k string) string {
		if k == envDataDir {
			return data
		}
		return ""
	}}
	ctx := context.Background()

	db := unreachableDefault(t)
	release, err := ensureServer(ctx, e, &db)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	defer release()
	if !strings.Contains(db.config.Host, data) {
		t.Fatalf("database on %q, want the socket under %s", db.config.Host, data)
	}
	// Both roles, as serve sets them up: the cluster's superuser owns and
	// migrates, serve connects as usersd_service, which may append events
	// and never change one.
	useServiceRole(ctx, e, &db)
	if db.config.User != embeddedServiceRole || db.owner == nil || db.owner.config.User != "postgres" {
		t.Fatalf("roles on the embedded default: serve as %q, owner %+v; want %s and postgres", db.config.User, db.owner, embeddedServiceRole)
	}
	if err := migrate(ctx, e, db); err != nil {
		t.Fatalf("migrate on the private cluster: %v", err)
	}
	svc, err := db.connect(ctx, "usersd")
	if err != nil {
		t.Fatalf("connect as %s: %v", embeddedServiceRole, err)
	}
	_, err = svc.Exec(ctx, "UPDATE events SET type = type")
	svc.Close(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("UPDATE events as %s: %v, want it refused (42501)", embeddedServiceRole, err)
	}

	release()
	if err := db.ping(ctx); err == nil {
		t.Fatalf("the cluster still answers after serve released it")
	}
}

func TestConfiguredDatabaseStartsNoCluster(t *testing.T) {
	t.Parallel()
	cfg, _ := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/x")
	db := database{URL: "postgres://postgres@127.0.0.1:1/x", Source: envDatabaseURL, config: cfg}
	release, err := ensureServer(context.Background(), &env{Log: discardLogger(), Getenv: func(string) string { return "" }}, &db)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if db.URL != "postgres://postgres@127.0.0.1:1/x" {
		t.Errorf("a configured DATABASE_URL was replaced by %q", db.URL)
	}
}
