package main

import (
	"context"
	"flag"
	"time"

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

Environment:
  DATABASE_URL       PostgreSQL connection URL
  USERSD_DATA_DIR    where the embedded default's private cluster lives
  USERSD_LOG_LEVEL   debug, info, warn or error (default info)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q: migrate takes only flags", args)
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				rt, err := open(ctx, e, db, needs{migrate: true})
				if err != nil {
					return err
				}
				rt.close()
				return nil
			}
		},
	}
}

// migrate creates the default database if need be, and migrates db.
func migrate(ctx context.Context, e *env, db database) error {
	if db.CreateIfMissing {
		created, err := db.ensureExists(ctx)
		if err != nil {
			return err
		}
		if created {
			e.Log.Info("created database", "database", db.String())
		}
	}
	if err := db.ping(ctx); err != nil {
		return err
	}
	e.Log.Info("applying migrations", "database", db.String(), "from", db.Source)
	start := time.Now()
	if err := postgres.Migrate(ctx, db.URL); err != nil {
		return err
	}
	e.Log.Info("database is up to date", "database", db.String(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
