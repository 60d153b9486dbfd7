// Package pgtest gives each test its own fresh, migrated PostgreSQL database,
// so tests against a real server run in parallel without seeing each other.
//
// The migrations run once into a template database named after a hash of
// their content; each test then copies the template (CREATE DATABASE ...
// TEMPLATE), which takes milliseconds, and drops its copy when it ends.
// The templates of other migration sets (older checkouts, other branches)
// are dropped once no test process uses them (templates.go), so they do
// not pile up on a developer's server.
//
// Each database has usersd's two roles: New connects as the owner (the
// admin role, which ran the migrations: tests that create tables, rebuild
// or tamper use it), Service as the service's role, ServiceRole, which owns
// nothing and has only what the migrations grant usersd serve. The service
// role is one for the whole server, shared by every test database: its
// grants are made once in the template and copied with it.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/migrations"
)

// EnvAdminURL names the variable holding the URL of a database on the test
// server as a role allowed to create databases.
const EnvAdminURL = "USERSD_TEST_DATABASE_URL"

const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServiceRole is the service's role of every test database (see the
// package comment). Roles belong to the whole server: the name is not
// usersd's default service role, so a test server that also runs the
// embedded default keeps the two apart.
const ServiceRole = "usersd_test_service"

// servicePassword lets the service role log in to a test server that asks
// for passwords; it guards nothing but test databases.
const servicePassword = "usersd-test-service"

// templateVersion goes into the template's name with the migrations, so
// that a change of what the template holds beyond them (the service
// role's grants) makes a new one.
const templateVersion = "service-role-1 in-use-lock-1"

// templateLockID serialises template creation across test processes: go test
// runs packages in parallel, and each may be first to need the template.
// It is an advisory lock in the admin database.
const templateLockID int64 = 0x75736572_7464 // "usertd"

// AdminURL is the URL tests use to create and drop their databases.
func AdminURL() string {
	if u := os.Getenv(EnvAdminURL); u != "" {
		return u
	}
	return defaultAdminURL
}

// New creates a fresh database with every migration applied and returns a
// pool connected to it and its URL. The database is dropped when the test
// ends. A test that cannot reach the server fails.
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := adminPool(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	tmpl, err := template(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	name := "usersd_test_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(tmpl)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections the test left open (a leaked pool, a
		// subscription still reading) instead of failing to drop.
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})

	dbURL, err := withDatabase(AdminURL(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pool, err := postgres.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the drop: cleanups run last-in first-out
	return pool, dbURL
}

// NewService is New as the service's role: a fresh database, with a pool
// connected as ServiceRole, and its URL. Tests of what usersd serve does
// use it, so that anything the service's role may not do fails them.
func NewService(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	_, dbURL := New(t)
	return Service(t, dbURL)
}

// Service connects to the database at dbURL (from New) as the service's
// role, ServiceRole, as usersd serve does with two roles, and returns the
// pool, closed when the test ends, and its URL.
func Service(t testing.TB, dbURL string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.User = url.UserPassword(ServiceRole, servicePassword)
	svcURL := u.String()
	pool, err := postgres.Connect(ctx, svcURL)
	if err != nil {
		t.Fatalf("pgtest: connect as %s: %v", ServiceRole, err)
	}
	t.Cleanup(pool.Close)
	return pool, svcURL
}

var admin struct {
	mu   sync.Mutex
	pool *pgxpool.Pool
}

// adminPool is shared by all tests of the process; it lives until the
// process exits, as the last cleanups need it.
func adminPool(ctx context.Context) (*pgxpool.Pool, error) {
	admin.mu.Lock()
	defer admin.mu.Unlock()
	if admin.pool != nil {
		return admin.pool, nil
	}
	cfg, err := pgxpool.ParseConfig(AdminURL())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvAdminURL, err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to admin database: %w", err)
	}
	admin.pool = pool
	return pool, nil
}

var tmplOnce struct {
	mu   sync.Mutex
	name string
}

// template returns the name of the migrated template database, creating it
// if this process is the first to need it. Failures are not remembered, so a
// later test retries (and fails with its own message) after, say, a restart.
func template(ctx context.Context) (string, error) {
	tmplOnce.mu.Lock()
	defer tmplOnce.mu.Unlock()
	if tmplOnce.name != "" {
		return tmplOnce.name, nil
	}
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := templatePrefix + sum[:16]
	// In use from now on, for as long as this process lives: no other
	// process drops it meanwhile (dropUnusedTemplates).
	if err := holdTemplate(ctx, name); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	if err := ensureTemplate(ctx, name); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	// Best effort: a template left behind is dropped by a later run.
	_, _ = dropUnusedTemplates(ctx, name)
	tmplOnce.name = name
	return name, nil
}

// ensureTemplate creates and migrates the template unless it exists. It
// migrates under a temporary name and renames at the end, so a template
// that exists is always complete, even if a test process died midway.
func ensureTemplate(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return fmt.Errorf("connect to admin database: %w", err)
	}
	defer conn.Close(context.Background())

	// A session lock, held while migrating, released when conn closes even
	// if we return early.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockID); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	// The role is the server's, made by whichever test process comes
	// first (it then outlives the templates granting it).
	if _, err := postgres.CreateLoginRole(ctx, AdminURL(), ServiceRole, servicePassword); err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}

	building := name + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(building)+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(building)); err != nil {
		return err
	}
	// The mark that lets another run drop it once no one uses it; it
	// stays with the rename.
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+ident(building)+" IS "+quote(templateComment)); err != nil {
		return err
	}
	buildURL, err := withDatabase(AdminURL(), building)
	if err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, buildURL); err != nil {
		return err
	}
	if err := postgres.GrantService(ctx, buildURL, ServiceRole); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+ident(building)+" RENAME TO "+ident(name))
	if isDuplicateDatabase(err) {
		// Another server user built it without our lock (a different
		// admin database); theirs is as good as ours.
		_, err = conn.Exec(ctx, "DROP DATABASE "+ident(building)+" WITH (FORCE)")
	}
	return err
}

// migrationsHash names the template after the migrations' content, so a new
// or changed migration gets a new template and old ones are never reused.
func migrationsHash() (string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", templateVersion)
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func isDuplicateDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P04" // duplicate_database
}

// withDatabase returns rawURL with its database replaced by name.
func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s must be a postgres:// URL, got %q", EnvAdminURL, rawURL)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
