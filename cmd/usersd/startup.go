package main

import (
	"context"

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
}

// opened is what open started and opened for a command; close releases
// it, in the reverse order.
type opened struct {
	db    database
	pool  *pgxpool.Pool    // with needs.pool or needs.events
	store eventstore.Store // with needs.events

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
	rt.db = db
	if n.migrate {
		err = migrate(ctx, e, db)
	} else {
		err = db.ping(ctx)
	}
	if err != nil {
		return nil, err
	}
	if !n.pool && !n.events {
		return rt, nil
	}
	if rt.pool, err = postgres.Connect(ctx, db.URL); err != nil {
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
	return rt, nil
}

// close releases what open opened, the last first.
func (rt *opened) close() {
	for i := len(rt.closers) - 1; i >= 0; i-- {
		rt.closers[i]()
	}
	rt.closers = nil
}
