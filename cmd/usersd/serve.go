package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/metrics"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
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
  USERSD_HTTP_ADDR   listen address (default :8080)
  USERSD_LOG_LEVEL   debug, info, warn or error (default info)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			httpAddr := fs.String("http-addr", "", "listen `address` (overrides $"+envHTTPAddr+"; default :8080)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q: serve takes only flags", args)
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				addr := *httpAddr
				if addr == "" {
					addr = e.Getenv(envHTTPAddr)
				}
				if addr == "" {
					addr = ":8080"
				}
				if _, _, err := net.SplitHostPort(addr); err != nil {
					return usageErrorf("%s=%q is not a listen address such as :8080 or 127.0.0.1:8080", envHTTPAddr, addr)
				}
				return serve(ctx, e, db, serveConfig{httpAddr: addr})
			}
		},
	}
}

// serveConfig is what serve reads beyond the database.
type serveConfig struct{ httpAddr string }

func serve(ctx context.Context, e *env, db database, cfg serveConfig) error {
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
	m := metrics.New()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, p := range allProjections() {
		runner := projections.NewRunner(pool, p, eventstore.Source{Store: store}, projections.RunnerOptions{
			Logger: e.Log,
			OnProgress: func(pr projections.Progress) {
				m.ObserveProjection(pr.Name, pr.Applied, pr.LastEventAt, pr.CaughtUp, time.Now())
			},
		})
		wg.Go(func() {
			if err := runner.Run(runCtx); err != nil && runCtx.Err() == nil {
				e.Log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		})
	}
	srv := &http.Server{Addr: cfg.httpAddr, Handler: opsHandler(m), ReadHeaderTimeout: 10 * time.Second}
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.ListenAndServe() }()
	e.Log.Info("usersd is running: projections follow the event store; the HTTP API is not built yet, only /metrics and /healthz",
		"database", db.String(), "addr", cfg.httpAddr)
	select {
	case <-ctx.Done():
	case err := <-listenErr:
		stop()
		wg.Wait()
		return fmt.Errorf("listen on %s (%s): %w", cfg.httpAddr, envHTTPAddr, err)
	}
	e.Log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	stop()
	wg.Wait()
	return nil
}

// opsHandler serves what operators need before the API exists.
func opsHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
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
