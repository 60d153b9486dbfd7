package main

import (
	"context"
	"flag"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/postgres"
)

// needs is what a command asks of the start-up, beyond a database that
// answers.
type needs struct {
	migrate bool // apply pending migrations first
	pool    bool // a connection pool to the database
	events  bool // the event store (implies pool)
	// codec opens the key store under the configured key-encryption keys
	// and makes the codec that seals and opens events (implies events).
	// A command that copies events as stored (events export) needs
	// neither the keys nor the KEK.
	codec bool
	// keks, when set, are the key-encryption keys the command has read
	// already (serve, to refuse a bad one before starting anything);
	// otherwise open reads them.
	keks *keks
	// service connects as the service's role (usersd serve): on the
	// embedded default, usersd_service, made for it; a role that could
	// rewrite the history is warned about.
	service bool
	// owner connects as the owner, the migrations' role
	// (USERSD_MIGRATE_DATABASE_URL when set): a rebuild creates tables.
	owner bool
}

// opened is what open started and opened for a command; close releases
// it, in the reverse order.
type opened struct {
	db    database
	pool  *pgxpool.Pool     // with needs.pool or needs.events
	store eventstore.Store  // with needs.events
	codec *eventstore.Codec // with needs.codec: seals and opens store's events

	closers []func()
}

// open is every command's start-up: find the database (on the embedded
// default, start its private cluster if no server answers), migrate it or
// check that it answers, connect, and open the event store, as far as n
// asks. On an error it releases what it had opened.
func open(ctx context.Context, e *env, db database, n needs) (_ *opened, err error) {
	rt := &opened{}
	defer func() {
		if err != nil {
			rt.close()
		}
	}()
	release, err := ensureServer(ctx, e, &db)
	if err != nil {
		return nil, err
	}
	rt.closers = append(rt.closers, release)
	if n.service {
		useServiceRole(ctx, e, &db)
	}
	rt.db = db
	if n.migrate {
		err = migrate(ctx, e, db)
	} else {
		err = db.ping(ctx)
	}
	if err != nil {
		return nil, err
	}
	n.events = n.events || n.codec
	if !n.pool && !n.events {
		return rt, nil
	}
	switch {
	case n.owner:
		rt.pool, err = postgres.Connect(ctx, db.migrator().URL)
	case n.service:
		rt.pool, err = connectService(ctx, e, &rt.db)
	default:
		rt.pool, err = postgres.Connect(ctx, db.URL)
	}
	if err != nil {
		return nil, err
	}
	rt.closers = append(rt.closers, rt.pool.Close)
	if !n.events {
		return rt, nil
	}
	store, closeStore, err := openEventStore(ctx, e, rt.pool)
	if err != nil {
		return nil, err
	}
	rt.store = store
	rt.closers = append(rt.closers, closeStore)
	if !n.codec {
		return rt, nil
	}
	if rt.codec, err = codecFor(ctx, e, rt.db, rt.pool, n.keks); err != nil {
		return nil, err
	}
	return rt, nil
}

// openFrom is open on the database that fs's -database-url (registered
// by databaseFlag), else DATABASE_URL, else the default names.
func openFrom(ctx context.Context, fs *flag.FlagSet, e *env, n needs) (*opened, error) {
	db, err := resolveDatabase(fs, e.Getenv)
	if err != nil {
		return nil, err
	}
	return open(ctx, e, db, n)
}

// onDatabase is the Setup of a command that takes no arguments and only
// the -database-url flag: it opens the database as n asks and runs run on
// it, then closes it; name is the command's, for noArgs.
func onDatabase(name string, n needs, run func(ctx context.Context, e *env, rt *opened) error) func(*flag.FlagSet, *env) func(context.Context, []string) error {
	return func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		databaseFlag(fs)
		return func(ctx context.Context, args []string) error {
			if err := noArgs(name, args); err != nil {
				return err
			}
			rt, err := openFrom(ctx, fs, e, n)
			if err != nil {
				return err
			}
			defer rt.close()
			return run(ctx, e, rt)
		}
	}
}

// noArgs refuses arguments to a command that takes only flags.
func noArgs(command string, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected arguments %q: %s takes only flags", args, command)
	}
	return nil
}

// close releases what open opened, the last first.
func (rt *opened) close() {
	for i := len(rt.closers) - 1; i >= 0; i-- {
		rt.closers[i]()
	}
	rt.closers = nil
}

// connectService connects as the service's role. On the embedded default,
// a server that does not let that role in (its own authentication rules)
// leaves serve on the owner's, as one role. A role that could rewrite the
// history (a superuser, the owner) is warned about.
func connectService(ctx context.Context, e *env, db *database) (*pgxpool.Pool, error) {
	pool, err := postgres.Connect(ctx, db.URL)
	if err != nil && db.Source == "default" && db.owner != nil {
		e.Log.Warn("the embedded default runs as one database role: the service's cannot log in", "role", db.config.User, "err", err)
		*db = db.migrator()
		pool, err = postgres.Connect(ctx, db.URL)
	}
	if err != nil {
		return nil, err
	}
	why, err := postgres.Privileged(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if why != "" {
		e.Log.Warn("the service's database role "+why+": it could change or remove events and audit entries; "+
			"give usersd serve a role of its own (DATABASE_URL) and the owner's to "+envMigrateDatabaseURL, "role", db.config.User)
	}
	return pool, nil
}
