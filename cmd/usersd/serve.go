package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/adapters/metrics"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/web"
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
Runs usersd: applies pending migrations, keeps events in PostgreSQL (or in
EventStoreDB when ESDB_URL is set), runs the
projections and the invitation e-mails, and serves the HTTP API (/v1/...),
/openapi.yaml, /healthz, /readyz, /metrics and the web UI (/, /audit, /mailbox,
/accept). It runs until interrupted (SIGINT or SIGTERM).

Without DATABASE_URL it runs on the embedded default: the PostgreSQL at
127.0.0.1:5432 if one answers, else a private cluster it starts under
USERSD_DATA_DIR; it creates a demo workspace with an Admin on first start and
prints the link that opens the web UI signed in as that Admin.

With USERSD_MIGRATE_DATABASE_URL (the owner's role), it migrates as the
owner and serves as DATABASE_URL's role, which the migrations grant only
what the service needs: it may read and append events and audit entries,
never change them. The embedded default sets both roles up itself.

Environment:
  DATABASE_URL            PostgreSQL connection URL (default: the local server)
  USERSD_MIGRATE_DATABASE_URL
                          the owner's URL of the same database: migrations
                          run as it; DATABASE_URL is then the service's role
  ESDB_URL                EventStoreDB / KurrentDB connection string; when set,
                          the events live there and PostgreSQL keeps the read
                          models (see docs/esdb.md)
  USERSD_HTTP_ADDR        listen address (default :8080)
  USERSD_METRICS_ADDR     serve /metrics only on this address (e.g.
                          127.0.0.1:9090), not on USERSD_HTTP_ADDR
  USERSD_PUBLIC_URL       base of links to usersd, in e-mails and the printed
                          link (default http://localhost:<port>)
  USERSD_JWT_SECRET       HS256 secret of bearer tokens, at least 32 bytes;
                          required unless on the embedded default, where a
                          random one is kept in $XDG_CONFIG_HOME/usersd/dev-jwt-secret
  USERSD_JWT_ISSUER       iss claim tokens must carry (default: any)
  USERSD_JWT_AUDIENCE     aud claim tokens must carry (default: any)
  USERSD_INVITATION_TTL   how long invitation links stay valid (Go duration,
                          default 168h)
  SMTP_URL                smtp://[user:pass@]host:port or smtps://...; unset,
                          on the embedded default, invitation e-mails go to
                          the development mailbox (GET /v1/dev/mailbox, the
                          UI's Mailbox page); elsewhere one of SMTP_URL and
                          USERSD_DEV_MAILBOX=true is required
  USERSD_DEV_MAILBOX      true: the development mailbox outside the embedded
                          default (its links sit in plain text in the database)
  USERSD_TOKEN_KEY        key of invitation links, at least 32 bytes, the same
                          in every replica (default: derived from the JWT secret)
  USERSD_TRUSTED_PROXIES  comma-separated addresses or CIDR prefixes of proxies
                          whose X-Forwarded-For and X-Request-Id are believed
                          (default: none)
  USERSD_DATA_DIR         where the embedded default keeps its private
                          PostgreSQL cluster (default ./.data)
  USERSD_LOG_LEVEL        debug, info, warn or error (default info)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			httpAddr := fs.String("http-addr", "", "listen `address` (overrides $"+envHTTPAddr+"; default :8080)")
			publicURL := fs.String("public-url", "", "base `URL` of links to usersd, in e-mails and the printed admin link (overrides $"+envPublicURL+")")
			metricsAddrFlag := fs.String("metrics-addr", "", "serve /metrics only on this `address` (overrides $"+envMetricsAddr+"; default: on the API's address)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q: serve takes only flags", args)
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				cfg, err := readServeConfig(e, db, *httpAddr, *publicURL, *metricsAddrFlag)
				if err != nil {
					return err
				}
				release, err := ensureServer(ctx, e, &db)
				if err != nil {
					return err
				}
				defer release()
				useServiceRole(ctx, e, &db)
				return serve(ctx, e, db, cfg)
			}
		},
	}
}

// serveConfig is what serve reads beyond the database.
type serveConfig struct {
	httpAddr string
	// publicURL is the base of links to usersd (USERSD_PUBLIC_URL); empty:
	// http://localhost:<the port listened on>.
	publicURL      string
	jwt            jwtConfig
	invitationTTL  time.Duration
	trustedProxies []netip.Prefix
	// demo creates the demo workspace on first start and prints the link
	// that opens the web UI signed in as its Admin: the embedded default.
	demo bool
	// mail is where invitation e-mails go (SMTP_URL, else the development
	// mailbox) and the key of their links.
	mail mailConfig
	// metricsAddr, when set, is the only address serving /metrics
	// (USERSD_METRICS_ADDR).
	metricsAddr string
	// consistencyTimeout bounds a read's wait for X-Consistent-With; zero
	// is the API's 5 s. Only tests change it.
	consistencyTimeout time.Duration
}

// readServeConfig reads serve's configuration: flags first, then the
// environment, then the defaults.
func readServeConfig(e *env, db database, httpAddrFlag, publicURLFlag, metricsAddrFlag string) (serveConfig, error) {
	cfg := serveConfig{httpAddr: httpAddrFlag, publicURL: publicURLFlag, demo: db.CreateIfMissing}
	addrSource := "-http-addr"
	if cfg.httpAddr == "" {
		cfg.httpAddr, addrSource = e.Getenv(envHTTPAddr), envHTTPAddr
	}
	if cfg.httpAddr == "" {
		cfg.httpAddr = ":8080"
	}
	if _, _, err := net.SplitHostPort(cfg.httpAddr); err != nil {
		return cfg, usageErrorf("%s=%q is not a listen address such as :8080 or 127.0.0.1:8080", addrSource, cfg.httpAddr)
	}
	var err error
	if cfg.metricsAddr, err = metricsAddr(metricsAddrFlag, e.Getenv, cfg.httpAddr); err != nil {
		return cfg, err
	}
	if cfg.publicURL, err = publicURL(publicURLFlag, e.Getenv); err != nil {
		return cfg, err
	}
	if cfg.invitationTTL, err = invitationTTL(e.Getenv); err != nil {
		return cfg, err
	}
	if cfg.trustedProxies, err = trustedProxies(e.Getenv); err != nil {
		return cfg, err
	}
	if cfg.jwt, err = readJWTConfig(e, db); err != nil {
		return cfg, err
	}
	if cfg.mail, err = parseMailConfig(e.Getenv, cfg.publicURL, cfg.httpAddr, cfg.jwt.secret, configuredBy(db, e.Getenv)); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// serve listens on cfg.httpAddr and runs serveOn.
func serve(ctx context.Context, e *env, db database, cfg serveConfig) error {
	l, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", cfg.httpAddr, envHTTPAddr, err)
	}
	return serveOn(ctx, e, db, cfg, l)
}

// serveOn is usersd serve on the listener l, which it closes: migrations,
// the demo workspace (cfg.demo), the projection runners, the HTTP API and
// the web UI, until ctx ends. Tests call it to run the same composition as
// the binary.
func serveOn(ctx context.Context, e *env, db database, cfg serveConfig, l net.Listener) error {
	defer l.Close()
	if err := migrate(ctx, e, db); err != nil {
		return err
	}
	pool, err := connectService(ctx, e, &db)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, closeStore, err := openEventStore(ctx, e, pool)
	if err != nil {
		return err
	}
	defer closeStore()
	m := metrics.New()
	policy := commands.DefaultInvitationPolicy()
	policy.TTL = cfg.invitationTTL
	workspaces := eventstore.NewWorkspaces(store, workspaceCacheSize)
	app := commands.NewApplication(commands.ProductionDeps(
		workspaces,
		eventstore.NewAccounts(store, 100_000),
		eventstore.NewLogins(store),
		linkSecrets(cfg.mail.TokenKey),
	), policy, commands.Instrumentation{Logger: e.Log, Observer: m})
	var demoAdmin uuid.UUID
	var demoPos domain.Position
	if cfg.demo {
		if demoAdmin, demoPos, err = ensureDemo(ctx, e, workspaces, app.Commands.CreateWorkspace); err != nil {
			return err
		}
	}
	// The projection runners, the waiter and the e-mails outlive the
	// signal: they stop only once the HTTP server has drained (below), so
	// that a request accepted before the stop is answered as if none had
	// come. A read waiting for its write (X-Consistent-With) keeps seeing
	// checkpoints move, whether this replica's runners move them or, once
	// they let go, another replica's.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	var wg sync.WaitGroup
	all := allProjections()
	runners := make([]*projections.Runner, len(all))
	for i, p := range all {
		runner := projections.NewRunner(pool, p, eventstore.Source{Store: store}, projections.RunnerOptions{
			Logger: e.Log,
			OnProgress: func(pr projections.Progress) {
				m.ObserveProjection(pr.Name, pr.Applied, pr.LastEventAt, pr.CaughtUp, time.Now())
			},
		})
		runners[i] = runner
		wg.Go(func() {
			if err := runner.Run(bgCtx); err != nil && bgCtx.Err() == nil {
				e.Log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		})
	}
	waiter := projections.NewWaiter(pool, nil, projections.WithWaiterLogger(e.Log))
	if err := waiter.Start(bgCtx); err != nil {
		stopBackground()
		wg.Wait()
		return err
	}
	// halt stops everything started so far and waits for it.
	halt := func() {
		stopBackground()
		wg.Wait()
		waiter.Wait()
	}
	if cfg.publicURL == "" {
		// Links lead to the port actually listened on (it may have
		// been :0).
		cfg.mail.PublicURL = linkBase("", l.Addr().String())
	}
	mailbox, mailDone, mailHealth, err := startMail(bgCtx, pool, store, app, cfg.mail, e.Log)
	if err != nil {
		halt()
		return err
	}
	wg.Go(mailDone)
	metricsHandler := m.Handler()
	if cfg.metricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.metricsAddr, metricsHandler, e.Log)
		if err != nil {
			halt()
			return err
		}
		defer stopMetrics()
		metricsHandler = nil // there only: 404 on the API's address
	}
	var stopping atomic.Bool
	api, err := httpapi.New(httpapi.Config{
		App: app, DB: pool, Waiter: waiter,
		JWTSecret: cfg.jwt.secret, JWTIssuer: cfg.jwt.issuer, JWTAudience: cfg.jwt.audience,
		Logger: e.Log, Metrics: metricsHandler, Observer: m,
		TrustedProxies: cfg.trustedProxies, Mailbox: mailbox, ConsistencyTimeout: cfg.consistencyTimeout,
		Ready: func(ctx context.Context) error {
			if stopping.Load() {
				return errors.New("stopping")
			}
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			// The event store too, which is another server with ESDB_URL:
			// a stream that never exists answers "not found" when it is up.
			if _, err := store.ReadStream(ctx, eventstore.WorkspaceStream(uuid.Nil), eventstore.ReadOptions{Max: 1}); err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
				return fmt.Errorf("event store: %w", err)
			}
			// A ping answers as soon as the database is back; the runners
			// may still be backing off, or hold a lock on a connection that
			// died. Each must have followed the source and the database
			// again since its last failure (Runner.Health).
			for i, r := range runners {
				if err := r.Health(ctx); err != nil {
					return fmt.Errorf("projection %s: %w", all[i].Name(), err)
				}
			}
			if err := mailHealth(ctx); err != nil {
				return fmt.Errorf("invitation e-mail process manager: %w", err)
			}
			if err := waiter.Health(); err != nil {
				return fmt.Errorf("read-your-writes waiter: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		halt()
		return err
	}
	srv := httpapi.NewHTTPServer(withUI(api, web.Handler()), httpapi.DefaultTimeouts)
	limited := httpapi.LimitConnsPerClient(l, httpapi.ConnLimit{Exempt: cfg.trustedProxies, Refused: m.RefusedConnections()})
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.Serve(limited) }()
	e.Log.Info("usersd is running: the HTTP API serves /v1, the web UI /; projections follow the event store",
		"database", db.String(), "addr", l.Addr().String(), "invitation_ttl", cfg.invitationTTL)
	if cfg.demo && demoAdmin != uuid.Nil {
		// The link is printed once the read models show the demo
		// workspace, so that the page it opens finds it.
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := waiter.WaitFor(waitCtx, demoPos, projectionNames()...)
		cancel()
		if err != nil {
			e.Log.Warn("the read models do not show the demo workspace yet", "err", err)
		}
		if err := printAdminLink(e, cfg, l.Addr(), demoAdmin); err != nil {
			e.Log.Warn("cannot print the demo Admin's link", "err", err)
		}
	}
	select {
	case <-ctx.Done():
	case err := <-listenErr:
		halt()
		return fmt.Errorf("serve on %s (%s): %w", l.Addr(), envHTTPAddr, err)
	}
	// The stop: no new connections, /readyz says 503, the requests
	// accepted finish (their reads still wait for positions: the runners
	// and the waiter run on), and only then does the background work stop.
	e.Log.Info("stopping")
	stopping.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still running after the grace period (a long audit
		// export to a slow client) are cut, so that closing the pool
		// below does not wait for them forever.
		e.Log.Warn("requests still running after 10 s are cut", "err", err)
		_ = srv.Close()
	}
	halt()
	return nil
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

// withUI sends the API's paths to api and everything else to the web UI,
// every answer with the security headers (nosniff).
func withUI(api, ui http.Handler) http.Handler {
	return httpapi.SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPIPath(r.URL.Path) {
			api.ServeHTTP(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	}))
}

func isAPIPath(p string) bool {
	switch p {
	case "/v1", "/healthz", "/readyz", "/metrics", "/openapi.yaml":
		return true
	}
	return strings.HasPrefix(p, "/v1/")
}

// ensureDemo creates the demo workspace unless an earlier start did, and
// answers the user id of its Admin (uuid.Nil if that Admin has left) and
// the position of the workspace's last event.
func ensureDemo(ctx context.Context, e *env, workspaces commands.WorkspaceRepository, create commands.Handler[commands.CreateWorkspace, commands.CreateWorkspaceResult]) (uuid.UUID, domain.Position, error) {
	for attempt := 0; ; attempt++ {
		var admin uuid.UUID
		var members int
		// An update that decides nothing answers the position of the
		// workspace's last event. The decision is pure (it may run twice).
		pos, err := workspaces.Update(ctx, demoWorkspaceID, func(w *domain.Workspace) error {
			if !w.Exists() {
				return domain.ErrWorkspaceNotFound
			}
			admin, members = uuid.Nil, w.MemberCount()
			if m, ok := w.MemberByEmail(demoOwnerEmail); ok && m.Role == domain.RoleAdmin && m.Status == domain.StatusActive {
				admin = m.UserID
			}
			return nil
		}, func(*domain.Workspace, domain.Event) domain.Metadata { return domain.Metadata{} })
		if err == nil {
			e.Log.Info("demo workspace found", "workspace", demoWorkspaceID, "members", members)
		}
		if !errors.Is(err, domain.ErrWorkspaceNotFound) {
			return admin, pos, err
		}
		res, err := create.Handle(ctx, commands.CreateWorkspace{
			WorkspaceID: demoWorkspaceID, Name: "Demo workspace", OwnerEmail: demoOwnerEmail, OwnerName: "Demo Admin",
			Meta: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "usersd-demo"},
		})
		if domain.ErrorCode(err) == domain.CodeWorkspaceExists && attempt == 0 {
			continue // another replica made it meanwhile: read it
		}
		if err != nil {
			return uuid.Nil, domain.Position{}, fmt.Errorf("create the demo workspace: %w", err)
		}
		e.Log.Info("created the demo workspace", "workspace", demoWorkspaceID, "admin", res.OwnerUserID)
		return res.OwnerUserID, res.Position, nil
	}
}
