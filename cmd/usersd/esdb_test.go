package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/testnet"
)

func TestOpenESDB(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	srv := esdbtest.Start(t)
	store, closeStore, err := openESDB(ctx, srv.URL(), log)
	if err != nil {
		t.Fatalf("openESDB(test server): %v", err)
	}
	defer closeStore()
	stream := eventstore.WorkspaceStream(uuid.New())
	e := eventstore.EventData{ID: uuid.New(), Type: "Happened", Data: []byte(`{}`)}
	if _, err := store.Append(ctx, stream, eventstore.NoStream{}, e); err != nil {
		t.Fatalf("append through the opened store: %v", err)
	}
	if got := srv.Len(); got != 1 {
		t.Errorf("events on the server: got %d, want 1", got)
	}

	// Nothing listens on a port just released: the error names the
	// variable and not the password.
	addr := testnet.FreeAddr(t)
	_, _, err = openESDB(ctx, "esdb://admin:s3cret-pw@"+addr+"?tls=false&maxDiscoverAttempts=1", log)
	if err == nil || !strings.Contains(err.Error(), envESDBURL) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("openESDB(nothing listening): got %v, want an error naming %s without the password", err, envESDBURL)
	}

	// A user without the right to read $all is stopped at start, told so.
	denied := startDenyingAll(t)
	_, _, err = openESDB(ctx, "esdb://admin:s3cret-pw@"+denied+"?tls=false", log)
	if err == nil || !strings.Contains(err.Error(), envESDBURL) || !strings.Contains(err.Error(), "may not read $all") || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("openESDB(no right to read $all): got %v, want an error naming %s and $all, without the password", err, envESDBURL)
	}

	for _, malformed := range []string{"http://admin:s3cret-pw@host", "esdb://admin:s3cret-pw@a:1,b:x%zz"} {
		_, _, err = openESDB(ctx, malformed, log)
		var usage *usageError
		if !errors.As(err, &usage) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("openESDB(malformed): got %v, want a usage error without the password", err)
		}
	}
}

// With ESDB_URL set, serve keeps every event in EventStoreDB (here the
// in-process test server) and only the read models in PostgreSQL, and a
// write is visible through those read models.
func TestServeKeepsEventsInESDB(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.New(t)
	srv := esdbtest.Start(t)
	s := startServing(t, map[string]string{"DATABASE_URL": dbURL, "ESDB_URL": srv.URL(), "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true"})
	base := s.base
	tok := systemToken()
	call := func(method, path, body string, header ...string) (int, map[string]any) {
		rq, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		rq.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			rq.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			rq.Header.Set(header[i], header[i+1])
		}
		r, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	code, created := call("POST", "/v1/workspaces", `{"name":"On ESDB","owner":{"email":"o@esdb.test","name":"O"}}`)
	if code != 201 {
		t.Fatalf("create workspace: %d %v", code, created)
	}
	ws, _ := created["workspaceId"].(string)
	pos, _ := created["position"].(string)
	owner, _ := created["ownerUserId"].(string)
	tok = userToken(owner)
	code, list := call("GET", "/v1/workspaces/"+ws+"/users", "", "X-Consistent-With", pos)
	if items, _ := list["items"].([]any); code != 200 || len(items) != 1 {
		t.Errorf("user list read after the write: %d %v, want the owner", code, list)
	}
	if got := srv.Len(); got < 2 {
		t.Errorf("events on the EventStoreDB server: got %d, want the workspace's and the owner account's", got)
	}
	var inPostgres int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM events").Scan(&inPostgres); err != nil {
		t.Fatal(err)
	}
	if inPostgres != 0 {
		t.Errorf("events in PostgreSQL: got %d, want 0 (they belong in EventStoreDB)", inPostgres)
	}
	// With the event store gone, the service says it is not ready.
	srv.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d with the event store stopped, want 503", r.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res := s.stop(); res.code != exitOK {
		t.Errorf("serve exited %d:\n%s", res.code, res.stderr)
	}
}

// denyAll is an event store whose user may read streams but not $all, as
// with EventStoreDB's default ACL for a user outside $admins.
type denyAll struct{ *esdbtest.Server }

func (d denyAll) Read(req *api.ReadReq, out api.Streams_ReadServer) error {
	if req.GetOptions().GetAll() != nil {
		return status.Error(codes.PermissionDenied, "Access Denied")
	}
	return d.Server.Read(req, out)
}

// startDenyingAll serves denyAll and returns its address.
func startDenyingAll(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterStreamsServer(srv, denyAll{esdbtest.Start(t)})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}
