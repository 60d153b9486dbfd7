package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// workspaceCacheSize bounds how many workspace aggregates one process keeps.
const workspaceCacheSize = 1024

// demoWorkspaceID is fixed so that a second start finds the demo workspace
// the first one made instead of making another.
var demoWorkspaceID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://usersd.invalid/demo-workspace"))

const demoOwnerEmail = "admin@demo.usersd.invalid"

func serveCommand() *command {
	return &command{
		Name:     "serve",
		Synopsis: "[flags]",
		Summary:  "run the service (applies migrations first)",
		Help: `
Runs usersd: applies pending migrations, keeps events in PostgreSQL, and on the
embedded default (no DATABASE_URL) creates a demo workspace with an Admin on
first start. It runs until interrupted (SIGINT or SIGTERM).

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)
  USERSD_LOG_LEVEL   debug, info, warn or error (default info)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q: serve takes only flags", args)
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				return serve(ctx, e, db)
			}
		},
	}
}

func serve(ctx context.Context, e *env, db database) error {
	if err := migrate(ctx, e, db); err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := pgstore.New(pool, pgstore.WithLogger(e.Log))
	defer store.Close()
	deps := commands.ProductionDeps(
		eventstore.NewWorkspaces(store, workspaceCacheSize),
		eventstore.NewAccounts(store, 100_000),
		eventstore.NewLogins(store),
	)
	if db.CreateIfMissing {
		if err := ensureDemo(ctx, e, deps); err != nil {
			return err
		}
	}
	e.Log.Info("usersd is running; the HTTP API is not built yet, so it only keeps the event store ready", "database", db.String())
	<-ctx.Done()
	e.Log.Info("stopping")
	return nil
}

// ensureDemo creates the demo workspace unless an earlier start did.
func ensureDemo(ctx context.Context, e *env, deps commands.Deps) error {
	err := deps.Workspaces.View(ctx, demoWorkspaceID, func(w *domain.Workspace) error {
		e.Log.Info("demo workspace found", "workspace", w.ID(), "members", w.MemberCount())
		return nil
	})
	if !errors.Is(err, domain.ErrWorkspaceNotFound) {
		return err
	}
	res, err := commands.NewCreateWorkspaceHandler(deps).Handle(ctx, commands.CreateWorkspace{
		WorkspaceID: demoWorkspaceID, Name: "Demo workspace", OwnerEmail: demoOwnerEmail, OwnerName: "Demo Admin",
		Meta: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "usersd-demo"},
	})
	if domain.ErrorCode(err) == domain.CodeWorkspaceExists {
		return nil // another replica made it meanwhile
	}
	if err != nil {
		return fmt.Errorf("create the demo workspace: %w", err)
	}
	e.Log.Info("created the demo workspace", "workspace", demoWorkspaceID, "admin", res.OwnerUserID)
	return nil
}
