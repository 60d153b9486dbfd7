// Package postgres connects usersd to PostgreSQL and keeps its schema up to
// date. The event store and the projections share the database it migrates.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver goose needs
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/usersd/usersd/migrations"
)

// migrationLockID is the session advisory lock that lets one replica at a time
// migrate; the others wait and then find nothing to do. Advisory locks are
// per database, so this only serialises migrations of the same database.
const migrationLockID int64 = 0x75736572_7364 // "usersd"

// Migrate applies the pending migrations in migrations.FS to the database at
// databaseURL. Replicas starting together may all call it.
func Migrate(ctx context.Context, databaseURL string) (err error) {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return fmt.Errorf("migrate: open: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()

	// Retry every second for up to five minutes: long enough for another
	// replica's migration, short enough to notice a stuck one.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate: locker: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true), // only our SQL files, never Go migrations registered elsewhere
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
// pgx's own default (the number of CPUs, at least 4) starves a service whose
// commands, subscriptions and waiters share one pool: measured at 1,000
// commands/s on 2 cores, 99% of requests waited for a connection.
const DefaultMaxConns = 20

// Connect opens a pool to databaseURL and checks that the database answers,
// so a wrong URL fails at start rather than at the first request.
func Connect(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}
