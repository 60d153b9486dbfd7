package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/embedded"
)

// The embedded default's database: without DATABASE_URL, usersd uses the
// PostgreSQL at 127.0.0.1:5432 if one answers, else a private cluster of its
// own under USERSD_DATA_DIR (default ./.data), which adapters/postgres/embedded
// creates on first use and starts.
const (
	envDataDir     = "USERSD_DATA_DIR"
	defaultDataDir = ".data"

	// probeTimeout bounds the look for a server at the default address.
	probeTimeout = 3 * time.Second
)

// ensureServer makes sure the embedded default has a server to talk to,
// and points db at it: the default address if it answers, else the private
// cluster, started if need be. A configured database (DATABASE_URL or the
// flag) is left alone. release stops the cluster if this call started it.
func ensureServer(ctx context.Context, e *env, db *database) (release func(), err error) {
	noop := func() {}
	if db.Source != "default" {
		return noop, nil
	}
	probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
	conn, probeErr := db.connect(probeCtx, "postgres")
	cancel()
	if probeErr == nil {
		_ = conn.Close(ctx)
		return noop, nil
	}
	dir := strings.TrimSpace(dataDirSetting.get(e.Getenv))
	if dir == "" {
		dir = defaultDataDir
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return noop, usageErrorf("%s=%q: %v", envDataDir, dir, err)
	}
	e.Log.Info("no PostgreSQL answers at the default address: using a private cluster",
		"default", db.describe("postgres"), "dir", root, "why", probeErr)
	c, err := embedded.Start(ctx, filepath.Join(root, "postgres"), embedded.Options{Logger: e.Log, DirSetting: envDataDir})
	if err != nil {
		return noop, fmt.Errorf("start the private PostgreSQL cluster (set DATABASE_URL to use another server, or %s to move it): %w", envDataDir, err)
	}
	u := c.URL(db.config.Database)
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		c.Stop()
		return noop, err
	}
	db.URL, db.config = u, cfg
	return c.Stop, nil
}

// embeddedServiceRole is the role usersd serve connects as on the embedded
// default.
const embeddedServiceRole = "usersd_service"

// useServiceRole gives the embedded default its two roles, as an operator
// would (README, "Database roles"): the server's superuser, db's user, owns
// the schema and migrates; usersd serve connects as usersd_service, a role
// with LOGIN only, made here unless it exists, which the migrations grant
// what the service needs. Both log in as the local server lets the
// superuser in (trust: the default address or the private cluster's
// socket). A configured database is left alone: its operator made its
// roles. If the role cannot be made, serve runs as one role, with a
// warning.
func useServiceRole(ctx context.Context, e *env, db *database) {
	if db.Source != "default" || db.owner != nil {
		return
	}
	owner := *db
	u, err := url.Parse(db.URL)
	if err != nil {
		e.Log.Warn("the embedded default runs as one database role", "err", err)
		return
	}
	admin := *u
	admin.Path = "/postgres"
	created, err := postgres.CreateLoginRole(ctx, admin.String(), embeddedServiceRole, "")
	if err != nil {
		e.Log.Warn("the embedded default runs as one database role: cannot make the service's", "role", embeddedServiceRole, "err", err)
		return
	}
	if created {
		e.Log.Info("created the service's database role", "role", embeddedServiceRole)
	}
	u.User = url.User(embeddedServiceRole)
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		e.Log.Warn("the embedded default runs as one database role", "err", err)
		return
	}
	db.URL, db.config, db.owner = u.String(), cfg, &owner
}
