// Package httpapi is usersd's HTTP API (shared/spec/api.md) on gorilla/mux:
// writes go through the command handlers, reads through the read models,
// authorised with the memberships read model, and any read may wait for the
// read models to include a position a write answered (X-Consistent-With).
//
// Errors are RFC 9457 problems with a stable code; statusOf in problem.go is
// the one table from codes to statuses.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/internal/positive"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
	"github.com/usersd/usersd/projections/webhooks"
)

// DefaultConsistencyTimeout bounds how long a read waits for X-Consistent-With.
const DefaultConsistencyTimeout = 5 * time.Second

// DB is the read-model database: a *pgxpool.Pool.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Waiter lets a read wait until read models include a position
// (*projections.Waiter).
type Waiter interface {
	WaitFor(ctx context.Context, pos domain.Position, names ...string) error
}

// InvitationLink is a new invitation link on its way to the mailer. Token
// is the link's secret: it must never be logged or stored.
type InvitationLink struct {
	WorkspaceID  uuid.UUID
	InvitationID uuid.UUID
	UserID       uuid.UUID
	Email        string
	Token        string
	// Resend is true when the link replaces an earlier one.
	Resend bool
}

// InvitationLinks receives the links of new invitations and resends once
// their events are stored, for an embedder that delivers links itself.
// usersd's own mailer does not need it: it derives each link again from the
// events (see docs/email.md). It must not block.
type InvitationLinks interface {
	Deliver(ctx context.Context, links []InvitationLink)
}

// Observer receives each answered request: the method, the matched
// route's template (never the path), the status, the problem's code when
// the answer was one, and how long it took.
type Observer interface {
	ObserveRequest(method, route string, status int, code string, took time.Duration)
}

// Config is what the API needs. App, DB, Waiter and JWTSecret are required.
type Config struct {
	// App is the application the writes (and the invitation lookup) call:
	// commands.NewApplication, built once by usersd serve.
	App    commands.Application
	DB     DB
	Waiter Waiter
	// JWTSecret verifies HS256 bearer tokens; at least MinSecretLength bytes.
	JWTSecret []byte
	// JWTIssuer, when set, is the iss claim every token must carry
	// (USERSD_JWT_ISSUER); empty accepts any issuer or none.
	JWTIssuer string
	// JWTAudience, when set, must be one of the token's aud values
	// (USERSD_JWT_AUDIENCE); empty accepts any audience or none.
	JWTAudience string
	Logger      *slog.Logger
	// Metrics serves GET /metrics; nil leaves it out.
	Metrics http.Handler
	// Observer, when set, is told of every answered request
	// (*metrics.Metrics in usersd serve).
	Observer Observer
	// Ready answers GET /readyz: nil when the database answers and the
	// projections run. Nil Ready is always ready.
	Ready func(ctx context.Context) error
	// Links, when set, also receives each new invitation link; nil is the
	// normal case (the mailer works from the events).
	Links InvitationLinks
	// TrustedProxies are the peers whose X-Forwarded-For is believed. By
	// default none: the client address is the TCP peer's.
	TrustedProxies []netip.Prefix
	// ConsistencyTimeout bounds waits for X-Consistent-With; default 5 s.
	ConsistencyTimeout time.Duration
	// Mailbox serves GET /v1/dev/mailbox, the development mailbox; nil
	// leaves the endpoint out (404), as in production.
	Mailbox Mailbox
	// Now is the clock for token expiry and invitation expiry in the list;
	// default time.Now.
	Now func() time.Time
	// Streams bounds the streamed answers (audit exports): how many run at
	// once, in the replica and per caller, and how long a write may wait
	// for the client (see stream.go). Zero fields take the defaults.
	Streams StreamLimits
	// TokenRate limits, per client address, the endpoints anyone may call
	// with an invitation token (lookup, accept); zero fields take
	// DefaultTokenBurst and DefaultTokenEvery.
	TokenRate RateLimit
	// AuditSigner signs the audit heads (GET .../audit/head, the checkpoint
	// line of NDJSON exports) and publishes its public keys (GET
	// /v1/audit/keys). Required: an audit export without its checkpoint
	// could not be checked offline.
	AuditSigner *audit.Signer
	// Keys opens the personal values of what the API shows (audit entries
	// and exports), which the history keeps sealed; only its Lookup is
	// used. Required: the same keyring the event store's codec seals with.
	Keys pii.Keyring
	// Events reads the event history for the event feed (GET /v1/events),
	// its personal values opened: eventstore.Source in usersd serve.
	// Required.
	Events projections.Source
	// FeedHeartbeat is the longest silence of a followed event feed;
	// default feed.DefaultHeartbeat.
	FeedHeartbeat time.Duration
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	router  *mux.Router
	handler http.Handler
	jwt     *jwt.Parser
	users   *userlist.Queries
	members *memberships.Queries
	history *history.Queries
	hooks   *webhooks.Queries

	streams   *streamSlots
	tokenRate *clientLimiter

	commands commands.Commands
	queries  commands.Queries

	// feedsEnd closes when the server shuts down (EndFeeds).
	feedsEnd     chan struct{}
	endFeedsOnce sync.Once
}

// Projection names a read waits for.
var (
	projUserList    = userlist.New().Name()
	projMemberships = memberships.New().Name()
	projAudit       = audit.New().Name()
	projHistory     = history.New().Name()
)

// New checks cfg and builds the API.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.App == (commands.Application{}):
		return nil, errors.New("httpapi: no application")
	case cfg.DB == nil:
		return nil, errors.New("httpapi: no read-model database")
	case cfg.Waiter == nil:
		return nil, errors.New("httpapi: no waiter")
	case len(cfg.JWTSecret) < MinSecretLength:
		return nil, fmt.Errorf("httpapi: the JWT secret is %d bytes; want at least %d", len(cfg.JWTSecret), MinSecretLength)
	case cfg.AuditSigner == nil:
		return nil, errors.New("httpapi: no audit signer")
	case cfg.Keys == nil:
		return nil, errors.New("httpapi: no keyring to open personal values with")
	case cfg.Events == nil:
		return nil, errors.New("httpapi: no event source for the event feed")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.ConsistencyTimeout = positive.Or(cfg.ConsistencyTimeout, DefaultConsistencyTimeout)
	cfg.Streams = cfg.Streams.withDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, jwt: newJWTParser(cfg),
		users:     userlist.NewQueries(cfg.DB, cfg.Now),
		members:   memberships.NewQueries(cfg.DB),
		history:   history.NewQueries(cfg.DB),
		hooks:     webhooks.NewQueries(cfg.DB),
		streams:   newStreamSlots(cfg.Streams),
		tokenRate: newClientLimiter(cfg.TokenRate),
		commands:  cfg.App.Commands,
		queries:   cfg.App.Queries,
		feedsEnd:  make(chan struct{}),
	}
	s.routes()
	s.handler = s.instrument(s.router)
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	r := mux.NewRouter()
	r.Use(nameRoute)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, s.log, newProblem(codeRouteNotFound, "no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, s.log, newProblem(codeMethodNotAllowed, r.Method+" is not allowed here"))
	})

	r.Handle("/healthz", http.HandlerFunc(s.healthz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", http.HandlerFunc(s.readyz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/openapi.yaml", http.HandlerFunc(s.openAPI)).Methods(http.MethodGet, http.MethodHead)
	if s.cfg.Metrics != nil {
		r.Handle("/metrics", s.cfg.Metrics).Methods(http.MethodGet)
	}

	// Full paths on one router, not a /v1 subrouter: mux answers a
	// subrouter's method mismatch with 404 instead of 405.
	v1 := prefixed{r, "/v1"}
	v1.Handle("/workspaces", s.authed(s.createWorkspace)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/invitations", s.authed(s.inviteUsers)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/users", s.authed(s.listUsers)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/users/{userId}", s.authed(s.getUser)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/users/{userId}", s.authed(s.removeUser)).Methods(http.MethodDelete)
	v1.Handle("/workspaces/{ws}/users/{userId}/role", s.authed(s.changeUserRole)).Methods(http.MethodPut)
	v1.Handle("/workspaces/{ws}/users/{userId}/suspend", s.authed(s.suspendUser)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/users/{userId}/reactivate", s.authed(s.reactivateUser)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/users/{userId}/invitation/resend", s.authed(s.resendInvitation)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/users/{userId}/permissions", s.authed(s.permissions)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/users/{userId}/history", s.authed(s.memberHistory)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/logins", s.authed(s.recordLogin)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/audit", s.authed(s.auditList)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/audit/verify", s.authed(s.auditVerify)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/audit/head", s.authed(s.auditHead)).Methods(http.MethodGet)
	v1.Handle("/audit/keys", http.HandlerFunc(s.auditKeys)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/access-reviews", s.authed(s.startAccessReview)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/access-reviews", s.authed(s.listAccessReviews)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/access-reviews/{id}", s.authed(s.getAccessReview)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/access-reviews/{id}/items/{userId}", s.authed(s.decideAccessReviewItem)).Methods(http.MethodPut)
	v1.Handle("/workspaces/{ws}/access-reviews/{id}/complete", s.authed(s.completeAccessReview)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/access-reviews/{id}/evidence", s.authed(s.accessReviewEvidence)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/settings", s.authed(s.updateSettings)).Methods(http.MethodPut)
	v1.Handle("/workspaces/{ws}/webhooks", s.authed(s.subscribeWebhook)).Methods(http.MethodPost)
	v1.Handle("/workspaces/{ws}/webhooks", s.authed(s.listWebhooks)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/webhooks/{webhookId}", s.authed(s.removeWebhook)).Methods(http.MethodDelete)
	v1.Handle("/workspaces/{ws}/webhooks/{webhookId}/deliveries", s.authed(s.webhookDeliveries)).Methods(http.MethodGet)
	v1.Handle("/workspaces/{ws}/webhooks/{webhookId}/replay", s.authed(s.replayWebhook)).Methods(http.MethodPost)
	v1.Handle("/invitations/lookup", s.public(s.lookupInvitation)).Methods(http.MethodPost)
	v1.Handle("/invitations/accept", s.public(s.acceptInvitation)).Methods(http.MethodPost)
	v1.Handle("/me/workspaces", s.authed(s.myWorkspaces)).Methods(http.MethodGet)
	v1.Handle("/accounts/lookup", s.authed(s.lookupAccount)).Methods(http.MethodGet)
	v1.Handle("/accounts/{userId}", s.authed(s.deleteAccount)).Methods(http.MethodDelete)
	v1.Handle("/accounts/{userId}/export", s.authed(s.exportAccount)).Methods(http.MethodGet)
	v1.Handle("/events", s.feedReaders(s.eventFeed)).Methods(http.MethodGet)
	if s.cfg.Mailbox != nil {
		v1.Handle("/dev/mailbox", s.authed(s.devMailbox)).Methods(http.MethodGet)
	}
	s.router = r
}

// prefixed registers routes under a path prefix on one router.
type prefixed struct {
	r      *mux.Router
	prefix string
}

func (p prefixed) Handle(path string, h http.Handler) *mux.Route { return p.r.Handle(p.prefix+path, h) }

// authedFunc handles a request of an authenticated principal; a returned
// error becomes a problem.
type authedFunc func(w http.ResponseWriter, r *http.Request, p principal) error

func (s *Server) authed(h authedFunc) http.Handler {
	return s.authedIf(func(p principal) *Problem {
		if p.eventsOnly {
			return newProblem(domain.CodeNotAllowed, "an events:read token may read the event feed and nothing else")
		}
		return nil
	}, h)
}

// feedReaders admits the readers of the event feed: the platform and
// events:read tokens, and no user.
func (s *Server) feedReaders(h authedFunc) http.Handler {
	return s.authedIf(func(p principal) *Problem {
		if !p.system && !p.eventsOnly {
			return newProblem(domain.CodeNotAllowed, "the event feed needs a system token or one with the scope events:read")
		}
		return nil
	}, h)
}

// authedIf serves h to the authenticated principals that allowed admits
// (a nil problem).
func (s *Server) authedIf(allowed func(principal) *Problem, h authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, prob := s.authenticate(r)
		if prob == nil {
			prob = allowed(p)
		}
		if prob != nil {
			writeProblem(w, r, s.log, prob)
			return
		}
		if err := h(w, r, p); err != nil {
			s.fail(w, r, err)
		}
	})
}

// public serves an endpoint anyone may call (with an invitation token),
// rate-limited per client address.
func (s *Server) public(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.limitClient(r); err != nil {
			s.fail(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fail answers err as a problem. Handlers attach field names by returning
// a *Problem (see withFields). A request whose client has left is recorded
// as cancelled (writeProblem).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, s.log, toProblem(err, nil))
}

// withFields turns a domain error into a problem naming the field it is
// about; other errors pass through.
func withFields(err error, fs fields) error {
	if err == nil {
		return nil
	}
	return toProblem(err, fs)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			if clientGone(r) {
				s.fail(w, r, err) // the probe left: cancelled, not "not ready"
				return
			}
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			writeProblem(w, r, s.log, newProblem(codeNotReady, "the service is not ready: its database or read models are not available yet"))
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}
