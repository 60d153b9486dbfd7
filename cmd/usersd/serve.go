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
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/metrics"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/web"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
)

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
/openapi.yaml, /healthz, /readyz, /metrics and the web UI (/, /audit, /reviews, /mailbox,
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
  USERSD_AUDIT_SIGNING_KEY  Ed25519 seed (32 bytes, base64url) that signs the
                          audit heads and exports' checkpoints; required unless
                          on the embedded default, where a random one is kept in
                          $XDG_CONFIG_HOME/usersd/dev-audit-signing-key
  USERSD_AUDIT_PREVIOUS_KEYS  public keys (base64url, comma-separated) of earlier
                          signing keys, published at /v1/audit/keys after a rotation
  USERSD_KEY_ENCRYPTION_KEY  key-encryption key (32 bytes, base64url) that wraps
                          each person's data key in the database; required unless
                          on the embedded default, where a random one is kept in
                          $XDG_CONFIG_HOME/usersd/dev-key-encryption-key; keep it
                          out of the database's backups (docs/erasure.md)
  USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS  former key-encryption keys (comma-separated),
                          until usersd keys rotate has re-wrapped what they wrapped
  USERSD_INVITATION_TTL   how long invitation links stay valid (Go duration,
                          default 168h)
  SMTP_URL                smtp://[user:pass@]host:port or smtps://...; unset,
                          on the embedded default, invitation e-mails go to
                          the development mailbox (GET /v1/dev/mailbox, the
                          UI's Mailbox page); elsewhere one of SMTP_URL and
                          USERSD_DEV_MAILBOX=true is required
  USERSD_DEV_MAILBOX      true: the development mailbox outside the embedded
                          default (its links sit in plain text in the database)
  USERSD_WEBHOOK_ALLOW_PRIVATE  true: webhooks may call private, loopback and
                          link-local addresses (default false: refused at
                          subscription and at every delivery)
  USERSD_TOKEN_KEY        key of invitation links, at least 32 bytes, the same
                          in every replica (default: derived from the JWT secret)
  USERSD_TRUSTED_PROXIES  comma-separated addresses or CIDR prefixes of proxies
                          whose X-Forwarded-For and X-Request-Id are believed
                          (default: none)
  USERSD_NATS_URL         NATS server(s) with JetStream (nats://host:4222, tls://...,
                          comma-separated); when set, every event is also
                          published to the stream USERSD_EVENTS, subjects
                          usersd.events.<workspace>.<type> (docs/integrations.md)
  USERSD_RETENTION_INTERVAL  time between sweeps of the operational tables
                          (default 1m; docs/retention.md)
  USERSD_POISON_RETENTION how long the poison queues (e-mails, webhooks) keep
                          a message (720h)
  USERSD_DELIVERY_RETENTION  how long a delivery-log row is kept once its
                          invitation's link no longer works (24h)
  USERSD_DEV_MAILBOX_RETENTION  how long the development mailbox keeps a
                          message (168h)
  USERSD_WEBHOOK_DELIVERY_RETENTION  how long the webhooks' delivery log keeps
                          a delivered or failed delivery (168h)
  USERSD_DATA_DIR         where the embedded default keeps its private
                          PostgreSQL cluster (default ./.data)
  USERSD_LOG_LEVEL        debug, info, warn or error (default info)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			for _, s := range []setting{databaseURLSetting, httpAddrSetting, publicURLSetting, metricsAddrSetting} {
				s.register(fs, "")
			}
			return func(ctx context.Context, args []string) error {
				if err := noArgs("serve", args); err != nil {
					return err
				}
				db, err := resolveDatabase(fs, e.Getenv)
				if err != nil {
					return err
				}
				cfg, err := readServeConfig(e, db, fs)
				if err != nil {
					return err
				}
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
	// auditSigner signs the audit heads (USERSD_AUDIT_SIGNING_KEY).
	auditSigner *audit.Signer
	// keks wrap the personal data keys in the database
	// (USERSD_KEY_ENCRYPTION_KEY, USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS),
	// read here so that a bad one stops serve before it starts anything,
	// and handed to open for the codec.
	keks keks
	// nats is where every event is also published (USERSD_NATS_URL);
	// its url is empty when none.
	nats natsConfig
	// retention is how long the sweeper keeps operational rows.
	retention retentionConfig
	// webhookAllowPrivate lets webhooks call private and loopback
	// addresses (USERSD_WEBHOOK_ALLOW_PRIVATE).
	webhookAllowPrivate bool
	// consistencyTimeout bounds a read's wait for X-Consistent-With; zero
	// is the API's 5 s. Only tests change it.
	consistencyTimeout time.Duration
}

// readServeConfig reads serve's configuration: the flags given on fs (nil:
// none) first, then the environment, then the defaults (see setting).
func readServeConfig(e *env, db database, fs *flag.FlagSet) (serveConfig, error) {
	// The demo workspace, like every development convenience, only on the
	// embedded default (not with ESDB_URL set either).
	cfg := serveConfig{demo: configuredBy(db, e.Getenv) == ""}
	var addrSource string
	cfg.httpAddr, addrSource = httpAddrSetting.lookup(fs, e.Getenv)
	if _, _, err := net.SplitHostPort(cfg.httpAddr); err != nil {
		return cfg, usageErrorf("%s=%q is not a listen address such as :8080 or 127.0.0.1:8080", addrSource, cfg.httpAddr)
	}
	var err error
	if cfg.metricsAddr, err = metricsAddr(fs, e.Getenv, cfg.httpAddr); err != nil {
		return cfg, err
	}
	if cfg.publicURL, err = publicURL(fs, e.Getenv); err != nil {
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
	if cfg.auditSigner, err = auditSigner(e, db); err != nil {
		return cfg, err
	}
	if cfg.keks, err = readKEKs(e, db); err != nil {
		return cfg, err
	}
	if cfg.nats, err = readNATSConfig(e.Getenv); err != nil {
		return cfg, err
	}
	if cfg.retention, err = readRetention(e.Getenv); err != nil {
		return cfg, err
	}
	if cfg.webhookAllowPrivate, err = webhookAllowPrivate(e.Getenv); err != nil {
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
	rt, err := open(ctx, e, db, needs{migrate: true, codec: true, service: true, keks: &cfg.keks})
	if err != nil {
		return err
	}
	defer rt.close()
	m := metrics.New()
	workspaces := eventstore.NewWorkspaces(rt.store, rt.codec, eventstore.ServeWorkspaceCache)
	app, err := newApplication(e, rt.store, rt.codec, rt.pool, workspaces, cfg, m)
	if err != nil {
		return err
	}
	var demo demoAdmin
	if cfg.demo {
		if demo, err = ensureDemo(ctx, e, workspaces, app.Commands.CreateWorkspace); err != nil {
			return err
		}
	}
	if cfg.publicURL == "" {
		// Links lead to the port actually listened on (it may have
		// been :0).
		cfg.mail.PublicURL = linkBase("", l.Addr().String())
	}
	bg, err := startBackground(ctx, e, rt, app, cfg, m)
	if err != nil {
		return err
	}
	defer bg.halt()
	metricsHandler := m.Handler()
	if cfg.metricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.metricsAddr, metricsHandler, e.Log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		metricsHandler = nil // there only: 404 on the API's address
	}
	var stopping atomic.Bool
	api, err := httpapi.New(httpapi.Config{
		App: app, DB: rt.pool, Waiter: bg.waiter,
		JWTSecret: cfg.jwt.secret, JWTIssuer: cfg.jwt.issuer, JWTAudience: cfg.jwt.audience,
		Logger: e.Log, Metrics: metricsHandler, Observer: m,
		TrustedProxies: cfg.trustedProxies, Mailbox: bg.mailbox, ConsistencyTimeout: cfg.consistencyTimeout,
		AuditSigner: cfg.auditSigner, Keys: rt.codec.Keys(),
		Events: eventstore.Source{Store: rt.store, Codec: rt.codec},
		Ready: func(ctx context.Context) error {
			if stopping.Load() {
				return errors.New("stopping")
			}
			return ready(ctx, rt, bg)
		},
	})
	if err != nil {
		return err
	}
	srv := httpapi.NewHTTPServer(withUI(api, web.Handler()), httpapi.DefaultTimeouts)
	// Followed event feeds never end by themselves: the stop ends them,
	// each with a last heartbeat to resume from.
	srv.RegisterOnShutdown(api.EndFeeds)
	limited := httpapi.LimitConnsPerClient(l, httpapi.ConnLimit{Exempt: cfg.trustedProxies, Refused: m.RefusedConnections()})
	listenErr := make(chan error, 1)
	go func() { listenErr <- srv.Serve(limited) }()
	e.Log.Info("usersd is running: the HTTP API serves /v1, the web UI /; projections follow the event store",
		"database", rt.db.String(), "addr", l.Addr().String(), "invitation_ttl", cfg.invitationTTL, "audit_key_id", cfg.auditSigner.KeyID())
	if cfg.demo && demo.userID != uuid.Nil {
		printDemoLink(ctx, e, cfg, l.Addr(), bg.waiter, demo)
	}
	select {
	case <-ctx.Done():
	case err := <-listenErr:
		bg.halt()
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
	bg.halt()
	return nil
}

// newApplication builds the commands and queries of the service, once, on
// the event store: every adapter receives this one application.
func newApplication(e *env, store eventstore.Store, codec *eventstore.Codec, pool *pgxpool.Pool, workspaces *eventstore.Workspaces, cfg serveConfig, m *metrics.Metrics) (commands.Application, error) {
	policy := commands.DefaultInvitationPolicy()
	policy.TTL = cfg.invitationTTL
	accounts := eventstore.NewAccounts(store, codec, eventstore.ServeAccountCache)
	deps := commands.ProductionDeps(workspaces, accounts, eventstore.NewLogins(store, codec), linkSecrets(cfg.mail.TokenKey))
	deps.People, deps.Deleter, deps.Keys = postgres.NewPersonDirectory(pool), accounts, keyShredderOf(codec.Keys())
	secrets, err := webhookSecretsOf(codec)
	if err != nil {
		return commands.Application{}, err
	}
	deps.WebhookTargets, deps.WebhookSecrets = webhooks.Guard{AllowPrivate: cfg.webhookAllowPrivate}, secrets
	return commands.NewApplication(deps, policy, commands.Instrumentation{Logger: e.Log, Observer: m}), nil
}

// keyShredderOf is the codec's key store seen as DeleteAccount's
// KeyShredder: the keys it destroys are the ones events are sealed with. A
// keyring that cannot destroy (none in serve) leaves deletion unconfigured.
func keyShredderOf(keys pii.Keyring) commands.KeyShredder {
	if s, ok := keys.(commands.KeyShredder); ok {
		return s
	}
	return nil
}

// background is the work that serve runs beside the HTTP server: the
// projection runners, the read-your-writes waiter, the invitation e-mails,
// the JetStream publisher and the retention sweeper. It outlives the signal: it stops only once the HTTP server has
// drained, so that a request accepted before the stop is answered as if
// none had come. A read waiting for its write (X-Consistent-With) keeps
// seeing checkpoints move, whether this replica's runners move them or,
// once they let go, another replica's.
type background struct {
	stop    context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	models  []projections.ReadModel
	runners []*projections.Runner
	waiter  *projections.Waiter
	mailbox httpapi.Mailbox // the development mailbox; nil with SMTP
	mail    func(context.Context) error
	hooks   func(context.Context) error // the webhooks' dispatcher's health
}

// startBackground starts the runners, the waiter, the e-mails, the
// webhooks and, with USERSD_NATS_URL, the JetStream publisher.
func startBackground(ctx context.Context, e *env, rt *opened, app commands.Application, cfg serveConfig, m *metrics.Metrics) (_ *background, err error) {
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	bg := &background{stop: stop, models: allProjections()}
	defer func() {
		if err != nil {
			bg.halt()
		}
	}()
	for _, p := range bg.models {
		runner := projections.NewRunner(rt.pool, p, eventstore.Source{Store: rt.store, Codec: rt.codec}, projections.RunnerOptions{
			Logger: e.Log,
			OnProgress: func(pr projections.Progress) {
				m.ObserveProjection(pr.Name, pr.Applied, pr.LastEventAt, pr.CaughtUp, time.Now())
			},
		})
		bg.runners = append(bg.runners, runner)
		bg.wg.Go(func() {
			if err := runner.Run(bgCtx); err != nil && bgCtx.Err() == nil {
				e.Log.Error("projection stopped", "projection", p.Name(), "err", err)
			}
		})
	}
	waiter := projections.NewWaiter(rt.pool, nil, projections.WithWaiterLogger(e.Log))
	if err := waiter.Start(bgCtx); err != nil {
		return nil, err
	}
	bg.waiter = waiter
	src := eventstore.Source{Store: rt.store, Codec: rt.codec}
	mailbox, mailDone, mailHealth, err := startMail(bgCtx, rt.pool, src, app, cfg.mail, e.Log)
	if err != nil {
		return nil, err
	}
	bg.wg.Go(mailDone)
	natsDone, err := startPublisher(bgCtx, e, rt, cfg.nats, m)
	if err != nil {
		return nil, err
	}
	bg.wg.Go(natsDone)
	bg.wg.Go(startRetention(bgCtx, e, rt.pool, app, cfg.retention, m))
	bg.mailbox, bg.mail = mailbox, mailHealth
	hooksDone, hooksHealth, err := startWebhooks(bgCtx, rt.pool, src, cfg.webhookAllowPrivate, e.Log)
	if err != nil {
		return nil, err
	}
	bg.wg.Go(hooksDone)
	bg.hooks = hooksHealth
	return bg, nil
}

// halt stops everything started and waits for it; it runs once.
func (bg *background) halt() {
	bg.once.Do(func() {
		bg.stop()
		bg.wg.Wait()
		if bg.waiter != nil {
			bg.waiter.Wait()
		}
	})
}

// ready is /readyz: the database and the event store answer, and the
// background work has recovered from its last failure.
func ready(ctx context.Context, rt *opened, bg *background) error {
	if err := rt.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	// The event store too, which is another server with ESDB_URL: a
	// stream that never exists answers "not found" when it is up.
	if _, err := rt.store.ReadStream(ctx, eventstore.WorkspaceStream(uuid.Nil), eventstore.ReadOptions{Max: 1}); err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		return fmt.Errorf("event store: %w", err)
	}
	// A ping answers as soon as the database is back; the runners may
	// still be backing off, or hold a lock on a connection that died.
	// Each must have followed the source and the database again since its
	// last failure (Runner.Health).
	for i, r := range bg.runners {
		if err := r.Health(ctx); err != nil {
			return fmt.Errorf("projection %s: %w", bg.models[i].Name(), err)
		}
	}
	if err := bg.mail(ctx); err != nil {
		return fmt.Errorf("invitation e-mail process manager: %w", err)
	}
	if err := bg.hooks(ctx); err != nil {
		return fmt.Errorf("webhook dispatcher: %w", err)
	}
	if err := bg.waiter.Health(); err != nil {
		return fmt.Errorf("read-your-writes waiter: %w", err)
	}
	return nil
}

// printDemoLink prints the link that opens the web UI as the demo Admin,
// once the read models show the demo workspace, so that the page it opens
// finds it.
func printDemoLink(ctx context.Context, e *env, cfg serveConfig, addr net.Addr, waiter *projections.Waiter, demo demoAdmin) {
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := waiter.WaitFor(waitCtx, demo.pos, projectionNames()...)
	cancel()
	if err != nil {
		e.Log.Warn("the read models do not show the demo workspace yet", "err", err)
	}
	if err := printAdminLink(e, cfg, addr, demo.userID); err != nil {
		e.Log.Warn("cannot print the demo Admin's link", "err", err)
	}
}

// withUI sends the API's paths to api and everything else to the web UI.
// Each sets the security headers (nosniff) on every answer it gives itself.
func withUI(api, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPIPath(r.URL.Path) {
			api.ServeHTTP(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	})
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
// demoAdmin is the demo workspace's Admin (uuid.Nil if that Admin has
// left) and the position of the workspace's last event.
type demoAdmin struct {
	userID uuid.UUID
	pos    domain.Position
}

func ensureDemo(ctx context.Context, e *env, workspaces commands.WorkspaceRepository, create commands.Handler[commands.CreateWorkspace, commands.CreateWorkspaceResult]) (demoAdmin, error) {
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
			return demoAdmin{admin, pos}, err
		}
		res, err := create.Handle(ctx, commands.CreateWorkspace{
			WorkspaceID: demoWorkspaceID, Name: "Demo workspace", OwnerEmail: demoOwnerEmail, OwnerName: "Demo Admin",
			Meta: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "usersd-demo"},
		})
		if domain.ErrorCode(err) == domain.CodeWorkspaceExists && attempt == 0 {
			continue // another replica made it meanwhile: read it
		}
		if err != nil {
			return demoAdmin{}, fmt.Errorf("create the demo workspace: %w", err)
		}
		e.Log.Info("created the demo workspace", "workspace", demoWorkspaceID, "admin", res.OwnerUserID)
		return demoAdmin{res.OwnerUserID, res.Position}, nil
	}
}
