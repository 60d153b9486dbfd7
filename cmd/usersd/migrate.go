package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/postgres"
)

func migrateCommand() *command {
	return &command{
		Name:     "migrate",
		Synopsis: "[flags]",
		Summary:  "apply pending database migrations, then exit",
		Help: `
Applies the pending migrations to the PostgreSQL database that holds the
read models and, without ESDB_URL, the events. Migrations already applied
are skipped, so running it again is harmless, and replicas that start at once
take turns. (usersd serve applies them too when it starts.)

The database is -database-url, else $DATABASE_URL, else the local default
` + defaultDatabaseURL + `,
which is created if it does not exist. When no server answers there, the
default is a private cluster under USERSD_DATA_DIR (default ./.data), started
for the command and stopped after it.

With USERSD_MIGRATE_DATABASE_URL, the migrations run as that role, the
owner, which then grants DATABASE_URL's role (usersd serve's, created with
LOGIN only) what the service needs, and nothing more.

Environment:
  DATABASE_URL       PostgreSQL connection URL
  USERSD_MIGRATE_DATABASE_URL
                     the owner's URL of the same database (see above)
  USERSD_DATA_DIR    where the embedded default's private cluster lives
  USERSD_LOG_LEVEL   debug, info, warn or error (default info)`,
		// open migrates (needs.migrate): nothing is left to do.
		Setup: onDatabase("migrate", needs{migrate: true}, func(context.Context, *env, *opened) error { return nil }),
	}
}

// migrate creates the default database if need be, and migrates db as its
// owner; with two roles, the owner then grants the service's role what it
// needs (every time: later migrations may have added tables).
func migrate(ctx context.Context, e *env, db database) error {
	owner := db.migrator()
	if owner.CreateIfMissing {
		created, err := owner.ensureExists(ctx)
		if err != nil {
			return err
		}
		if created {
			e.Log.Info("created database", "database", owner.String())
		}
	}
	if err := owner.ping(ctx); err != nil {
		return err
	}
	e.Log.Info("applying migrations", "database", owner.String(), "from", owner.Source)
	start := time.Now()
	if err := postgres.Migrate(ctx, owner.URL); err != nil {
		var pgErr *pgconn.PgError
		if db.owner == nil && errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
			return fmt.Errorf("%w: %s's role may not change the schema: run usersd migrate as the owner, or set %s to the owner's URL",
				err, owner.Source, envMigrateDatabaseURL)
		}
		return err
	}
	if role := db.serviceRole(); role != "" {
		if err := postgres.GrantService(ctx, owner.URL, role); err != nil {
			return err
		}
		e.Log.Info("the service's role has what it needs, and no more", "role", role)
	}
	e.Log.Info("database is up to date", "database", owner.String(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
