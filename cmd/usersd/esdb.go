package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	esdbstore "github.com/usersd/usersd/adapters/eventstore/esdb"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
)

// envESDBURL names the EventStoreDB / KurrentDB connection string; when it
// is set, every event lives there and PostgreSQL keeps the read models.
const envESDBURL = "ESDB_URL"

// openEventStore opens where the events live: EventStoreDB when ESDB_URL
// is set, else the events table of the PostgreSQL database in pool. The
// returned func closes it.
func openEventStore(ctx context.Context, e *env, pool *pgxpool.Pool) (eventstore.Store, func(), error) {
	if conn := esdbURLSetting.get(e.Getenv); conn != "" {
		return openESDB(ctx, conn, e.Log)
	}
	store := pgstore.New(pool, pgstore.WithLogger(e.Log))
	return store, store.Close, nil
}

// openESDB opens the event store of an ESDB_URL connection string and
// checks, within connectTimeout, that the server answers a read and lets
// usersd's user subscribe to $all (every projection does; by default only
// $admins may). The returned func closes it. Errors name the variable and
// never carry the password of the connection string.
func openESDB(ctx context.Context, connectionString string, log *slog.Logger) (eventstore.Store, func(), error) {
	store, err := esdbstore.Open(connectionString, esdbstore.WithLogger(log))
	if err != nil {
		return nil, nil, usageErrorf("%s: %s", envESDBURL, redact(err.Error(), connectionString))
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	// A stream that never exists: answering "not found" proves the server is
	// reachable and accepts our credentials.
	_, err = store.ReadStream(ctx, eventstore.WorkspaceStream(uuid.Nil), eventstore.ReadOptions{Max: 1})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		store.Close()
		return nil, nil, fmt.Errorf("%s: the event store does not answer: %s", envESDBURL, redact(err.Error(), connectionString))
	}
	if err := store.CheckReadAll(ctx); err != nil {
		store.Close()
		if errors.Is(err, esdbstore.ErrAccessDenied) {
			return nil, nil, fmt.Errorf("%s: the user may not read $all, which every projection subscribes to: grant it read access on $all (docs/esdb.md, Rights): %s",
				envESDBURL, redact(err.Error(), connectionString))
		}
		return nil, nil, fmt.Errorf("%s: subscribing to $all: %s", envESDBURL, redact(err.Error(), connectionString))
	}
	return store, store.Close, nil
}

// redact removes the connection string's password from a message. It
// does not rely on url.Parse, which refuses the comma-separated hosts of a
// gossip-seed connection string, and whose errors quote the string.
func redact(msg, connectionString string) string {
	_, rest, ok := strings.Cut(connectionString, "://")
	if !ok {
		return msg
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return msg
	}
	_, pw, ok := strings.Cut(userinfo, ":")
	if !ok || pw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, pw, "xxxxx")
	if decoded, err := url.PathUnescape(pw); err == nil && decoded != "" {
		msg = strings.ReplaceAll(msg, decoded, "xxxxx")
	}
	return msg
}
