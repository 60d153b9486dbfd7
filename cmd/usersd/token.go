package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/domain"
)

const (
	envJWTIssuer   = "USERSD_JWT_ISSUER"
	envJWTAudience = "USERSD_JWT_AUDIENCE"
	envPublicURL   = "USERSD_PUBLIC_URL"

	// demoLinkTTL is how long the admin link serve prints stays valid: a
	// working day and then some; every start prints a fresh one.
	demoLinkTTL = 24 * time.Hour
	// maxClaimLength bounds the issuer and audience we accept.
	maxClaimLength = 256
)

// systemSubject is the sub of platform tokens minted by usersd token
// -system: the API wants a UUID there, and a fixed one keeps such tokens
// recognisable in the audit history.
var systemSubject = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://usersd.invalid/system"))

// jwtConfig is how bearer tokens are signed and checked.
type jwtConfig struct {
	secret   []byte
	issuer   string // iss, when set
	audience string // aud, when set
}

// readJWTConfig reads USERSD_JWT_SECRET (see jwtSecret), USERSD_JWT_ISSUER
// and USERSD_JWT_AUDIENCE.
func readJWTConfig(e *env, db database) (jwtConfig, error) {
	var c jwtConfig
	for _, v := range []struct {
		setting
		dst *string
	}{{jwtIssuerSetting, &c.issuer}, {jwtAudienceSetting, &c.audience}} {
		val, _ := v.trimmed(nil, e.Getenv)
		if len(val) > maxClaimLength || strings.ContainsFunc(val, func(r rune) bool { return r < ' ' }) {
			return c, usageErrorf("%s: want at most %d printable characters", v.env, maxClaimLength)
		}
		*v.dst = val
	}
	var err error
	c.secret, err = jwtSecret(e, db)
	return c, err
}

// mint signs a token for sub (and the system scope when system is true),
// valid for ttl from now.
func (c jwtConfig) mint(sub uuid.UUID, system bool, ttl time.Duration, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"sub": sub.String(),
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if system {
		claims["scope"] = httpapi.SystemScope
	}
	if c.issuer != "" {
		claims["iss"] = c.issuer
	}
	if c.audience != "" {
		claims["aud"] = c.audience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(c.secret)
}

// publicURL reads the base of links to usersd: the -public-url flag on fs, else
// USERSD_PUBLIC_URL; "" when neither is set.
func publicURL(fs *flag.FlagSet, getenv func(string) string) (string, error) {
	v, name := publicURLSetting.trimmed(fs, getenv)
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", usageErrorf("%s=%q: want an absolute http or https URL without query, such as https://users.example.com", name, v)
	}
	return strings.TrimRight(v, "/"), nil
}

// linkBase is where people reach usersd: the public URL if configured,
// else localhost on the port of addr.
func linkBase(public string, addr string) string {
	if public != "" {
		return public
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// adminLink is the web UI's address signed in as user: the token rides in
// the fragment, which browsers never send to a server.
func adminLink(base, token string) string { return base + "/#token=" + token }

// printAdminLink prints the link that opens the web UI as the demo Admin.
// It goes to stdout for the person who started usersd, never to the log.
func printAdminLink(e *env, cfg serveConfig, addr net.Addr, admin uuid.UUID) error {
	tok, err := cfg.jwt.mint(admin, false, demoLinkTTL, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "\nusersd is ready. Open the web UI signed in as the demo workspace's Admin:\n\n    %s\n\n"+
		"The link carries a bearer token valid for %d hours (usersd token -demo-admin -link makes another).\n\n",
		adminLink(linkBase(cfg.publicURL, addr.String()), tok), int(demoLinkTTL.Hours()))
	return nil
}

func tokenCommand() *command {
	return &command{
		Name:     "token",
		Synopsis: "(-sub USER_ID | -system | -demo-admin) [flags]",
		Summary:  "mint a development bearer token (JWT) for a user or the platform",
		Help: `
Prints an HS256 bearer token signed with the secret usersd serve uses:
USERSD_JWT_SECRET, or on the embedded default (no DATABASE_URL) the
development secret kept in $XDG_CONFIG_HOME/usersd/dev-jwt-secret. It carries
iss and aud when USERSD_JWT_ISSUER and USERSD_JWT_AUDIENCE are set.

  usersd token -sub 0190f1c2-...      a user's token (sub = the user id)
  usersd token -system                the platform's token ("scope":"system")
  usersd token -demo-admin -link      the web UI's link, signed in as the demo
                                      workspace's Admin (reads the database)

For development and tests: production tokens come from the platform.

Environment:
  USERSD_JWT_SECRET    HS256 secret, at least 32 bytes (see above)
  USERSD_JWT_ISSUER    iss claim to set (optional)
  USERSD_JWT_AUDIENCE  aud claim to set (optional)
  USERSD_PUBLIC_URL    base of the -link address (default http://localhost
                       on the port of USERSD_HTTP_ADDR, or 8080)
  DATABASE_URL         PostgreSQL, for -demo-admin (default: the local server)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseFlag(fs)
			sub := fs.String("sub", "", "the user `id` (a UUID) the token is for")
			system := fs.Bool("system", false, `a platform token: "scope":"system" (sub defaults to a fixed id)`)
			demoAdmin := fs.Bool("demo-admin", false, "a token for the demo workspace's Admin")
			ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
			link := fs.Bool("link", false, "print the web UI's address signed in with the token instead of the token")
			publicURLSetting.register(fs, "base `URL` of -link (overrides $"+envPublicURL+")")
			return func(ctx context.Context, args []string) error {
				if err := noArgs("token", args); err != nil {
					return err
				}
				if *ttl <= 0 {
					return usageErrorf("-ttl %s: want a positive duration such as 1h or 30m", *ttl)
				}
				var userID uuid.UUID
				switch {
				case *demoAdmin && (*sub != "" || *system):
					return usageErrorf("-demo-admin names the user: leave out -sub and -system")
				case *sub != "":
					id, err := uuid.Parse(*sub)
					if err != nil || len(*sub) != 36 || id == uuid.Nil {
						return usageErrorf("-sub %q: want a user id (a UUID such as 0190f1c2-8a4e-7c3b-9d2e-1f0a2b3c4d5e)", *sub)
					}
					userID = id
				case *system:
					userID = systemSubject
				case !*demoAdmin:
					return usageErrorf("say whose token: -sub USER_ID, -system or -demo-admin")
				}
				db, err := resolveDatabase(fs, e.Getenv)
				if err != nil {
					return err
				}
				cfg, err := readJWTConfig(e, db)
				if err != nil {
					return err
				}
				base, err := publicURL(fs, e.Getenv)
				if err != nil {
					return err
				}
				if base == "" {
					addr, _ := httpAddrSetting.lookup(nil, e.Getenv)
					base = linkBase("", addr)
				}
				if *demoAdmin {
					if userID, err = findDemoAdmin(ctx, e, db); err != nil {
						return err
					}
				}
				tok, err := cfg.mint(userID, *system, *ttl, time.Now())
				if err != nil {
					return err
				}
				if *link {
					tok = adminLink(base, tok)
				}
				_, err = fmt.Fprintln(e.Stdout, tok)
				return err
			}
		},
	}
}

// findDemoAdmin reads the demo workspace's Admin from the event store.
func findDemoAdmin(ctx context.Context, e *env, db database) (uuid.UUID, error) {
	rt, err := open(ctx, e, db, needs{migrate: true, codec: true})
	if err != nil {
		return uuid.Nil, err
	}
	defer rt.close()
	db = rt.db
	var admin uuid.UUID
	err = eventstore.NewWorkspaces(rt.store, rt.codec, 1).View(ctx, demoWorkspaceID, func(w *domain.Workspace) error {
		if m, ok := w.MemberByEmail(demoOwnerEmail); ok && m.Role == domain.RoleAdmin && m.Status == domain.StatusActive {
			admin = m.UserID
		}
		return nil
	})
	switch {
	case domain.ErrorCode(err) == domain.CodeWorkspaceNotFound:
		return uuid.Nil, fmt.Errorf("no demo workspace in %s: usersd serve makes it on its first start on the embedded default", db)
	case err != nil:
		return uuid.Nil, err
	case admin == uuid.Nil:
		return uuid.Nil, fmt.Errorf("the demo workspace's Admin is no longer an active Admin")
	}
	return admin, nil
}
