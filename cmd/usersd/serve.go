package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/httpapi"
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

It serves the HTTP API (/v1/...), /healthz, /readyz and /metrics.

Environment:
  DATABASE_URL            PostgreSQL connection URL (default: the local server)
  USERSD_HTTP_ADDR        listen address (default :8080)
  USERSD_JWT_SECRET       HS256 secret of bearer tokens, at least 32 bytes;
                          required unless on the embedded default, where a
                          random one is kept in $XDG_CONFIG_HOME/usersd/dev-jwt-secret
  USERSD_INVITATION_TTL   how long invitation links stay valid (Go duration,
                          default 168h)
  USERSD_TRUSTED_PROXIES  comma-separated addresses or CIDR prefixes of proxies
                          whose X-Forwarded-For is believed (default: none)
  USERSD_LOG_LEVEL        debug, info, warn or error (default info)`,
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
				cfg := serveConfig{httpAddr: addr}
				if cfg.invitationTTL, err = invitationTTL(e.Getenv); err != nil {
					return err
				}
				if cfg.trustedProxies, err = trustedProxies(e.Getenv); err != nil {
					return err
				}
				if cfg.jwtSecret, err = jwtSecret(e, db); err != nil {
					return err
				}
				return serve(ctx, e, db, cfg)
			}
		},
	}
}

// serveConfig is what serve reads beyond the database.
type serveConfig struct {
	httpAddr       string
	jwtSecret      []byte
	invitationTTL  time.Duration
	trustedProxies []netip.Prefix
}

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
		linkSecrets(commands.DeriveTokenKey(cfg.jwtSecret)),
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
	all := allProjections()
	var running atomic.Int32
	for _, p := range all {
		runner := projections.NewRunner(pool, p, eventstore.Source{Store: store}, projections.RunnerOptions{
			Logger: e.Log,
			OnProgress: func(pr projections.Progress) {
				m.ObserveProjection(pr.Name, pr.Applied, pr.LastEventAt, pr.CaughtUp, time.Now())
			},
		})
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			if err := runner.Run(runCtx); err != nil && runCtx.Err() == nil {
				e.Log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		})
	}
	waiter := projections.NewWaiter(pool, nil, projections.WithWaiterLogger(e.Log))
	if err := waiter.Start(runCtx); err != nil {
		stop()
		wg.Wait()
		return err
	}
	policy := commands.DefaultInvitationPolicy()
	policy.TTL = cfg.invitationTTL
	api, err := httpapi.New(httpapi.Config{
		Deps: deps, Policy: policy, DB: pool, Waiter: waiter,
		JWTSecret: cfg.jwtSecret, Logger: e.Log, Metrics: m.Handler(),
		TrustedProxies: cfg.trustedProxies,
		Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if n := running.Load(); int(n) < len(all) {
				return fmt.Errorf("%d of %d projection runners stopped", len(all)-int(n), len(all))
			}
			return nil
		},
	})
	if err != nil {
		stop()
		wg.Wait()
		waiter.Wait()
		return err
	}
	srv := &http.Server{Addr: cfg.httpAddr, Handler: api, ReadHeaderTimeout: 10 * time.Second}
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.ListenAndServe() }()
	e.Log.Info("usersd is running: the HTTP API serves /v1; projections follow the event store",
		"database", db.String(), "addr", cfg.httpAddr, "invitation_ttl", cfg.invitationTTL)
	select {
	case <-ctx.Done():
	case err := <-listenErr:
		stop()
		wg.Wait()
		waiter.Wait()
		return fmt.Errorf("listen on %s (%s): %w", cfg.httpAddr, envHTTPAddr, err)
	}
	e.Log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	stop()
	wg.Wait()
	waiter.Wait()
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
