package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// TestOutagesAreUnavailableNotInternal feeds toProblem the errors that real
// outages produce (made here for real where the test can: refused and
// terminated connections, a database refusing connections, a closed pool,
// a pool that gives no connection in time, an EventStoreDB that does not
// answer) and errors that are not outages: the first must answer 503
// unavailable with Retry-After, the others not.
func TestOutagesAreUnavailableNotInternal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, dbURL := pgtest.New(t)

	outages := map[string]error{}
	// Nothing listens on port 1.
	_, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=10")
	outages["connection refused"] = fmt.Errorf("read the user list: %w", err)

	// A backend ended under a pooled connection (a restart, an operator).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `SELECT 1`)
	outages["backend terminated"] = err
	_, err = conn.Exec(ctx, `SELECT 1`)
	outages["connection closed after it"] = err
	conn.Release()

	// A database that takes no connections (as during a shutdown).
	name := strings.TrimPrefix(must(url.Parse(dbURL)).Path, "/")
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	_, err = pgx.Connect(ctx, dbURL)
	outages["database refuses connections"] = err
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}

	// No pooled connection in time: the one there is stays busy.
	cfg := must(pgxpool.ParseConfig(dbURL))
	cfg.MaxConns = 1
	small := must(pgxpool.NewWithConfig(ctx, cfg))
	busy, err := small.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = small.Exec(short, `SELECT 1`)
	cancelShort()
	outages["deadline while acquiring"] = err
	busy.Release()
	small.Close()
	_, err = small.Exec(ctx, `SELECT 1`)
	outages["closed pool"] = err

	// The server's own verdicts.
	outages["admin shutdown"] = &pgconn.PgError{Severity: "FATAL", Code: "57P01"}
	outages["cannot connect now"] = &pgconn.PgError{Severity: "FATAL", Code: "57P03"}
	outages["connection failure"] = &pgconn.PgError{Severity: "FATAL", Code: "08006"}

	// An EventStoreDB that does not answer, and one in an election that
	// outlasts the adapter's retries: the adapter's errors, as the
	// handlers get them.
	es, err := esdb.Open("esdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10&gossipTimeout=1", esdb.WithAppendRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = es.ReadStream(ctx, "workspace-x", eventstore.ReadOptions{})
	outages["eventstoredb unreachable"] = err
	es.Close()
	srv := esdbtest.Start(t)
	srv.Inject(esdbtest.OpReadStream, esdbtest.NoLeaderInfo, -1)
	es, err = esdb.Open(srv.URL(), esdb.WithAppendRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	_, err = es.ReadStream(ctx, "workspace-x", eventstore.ReadOptions{})
	outages["eventstoredb election"] = err

	for what, err := range outages {
		if err == nil {
			t.Errorf("%s: made no error", what)
			continue
		}
		p := toProblem(err, nil)
		if p.Code != codeUnavailable {
			t.Errorf("%s (%v): code %s, want %s", what, err, p.Code, codeUnavailable)
			continue
		}
		w := httptest.NewRecorder()
		writeProblem(w, httptest.NewRequest("GET", "/v1/x", nil), slog.New(slog.NewTextHandler(io.Discard, nil)), p)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: answered %d with Retry-After %q; want 503 with Retry-After", what, w.Code, w.Header().Get("Retry-After"))
		}
	}

	// Not outages: the server answered, the client left, a bug.
	_, err = pool.Exec(ctx, `SELECT 1/0`)
	for what, err := range map[string]error{
		"division by zero":   err,
		"unique violation":   &pgconn.PgError{Code: "23505"},
		"client cancelled":   fmt.Errorf("query: %w", context.Canceled),
		"a bug":              errors.New("nil map"),
		"eventstoredb other": esdbUnknown(),
	} {
		if p := toProblem(err, nil); p.Code == codeUnavailable {
			t.Errorf("%s (%v): answered unavailable; want it told apart from an outage", what, err)
		}
	}
	// A domain error stays itself.
	if p := toProblem(domain.ErrWorkspaceNotFound, nil); p.Code != domain.CodeWorkspaceNotFound {
		t.Errorf("a domain error became %s", p.Code)
	}
}

func esdbUnknown() error {
	e, _ := esdbclient.FromError(errors.New("parsing"))
	return e
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
