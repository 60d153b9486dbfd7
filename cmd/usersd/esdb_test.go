package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, _, err = openESDB(ctx, "esdb://admin:s3cret-pw@"+addr+"?tls=false&maxDiscoverAttempts=1", log)
	if err == nil || !strings.Contains(err.Error(), envESDBURL) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("openESDB(nothing listening): got %v, want an error naming %s without the password", err, envESDBURL)
	}

	for _, malformed := range []string{"http://admin:s3cret-pw@host", "esdb://admin:s3cret-pw@a:1,b:x%zz"} {
		_, _, err = openESDB(ctx, malformed, log)
		var usage *usageError
		if !errors.As(err, &usage) || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("openESDB(malformed): got %v, want a usage error without the password", err)
		}
	}
}
