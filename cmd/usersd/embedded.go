package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	dir := strings.TrimSpace(e.Getenv(envDataDir))
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
