package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/httpapi"
)

// Configuration: environment variables, which flags override. Each is
// validated before a command does anything, and a bad value is a usage error
// (exit 2) naming the variable or flag.
const (
	envDatabaseURL = "DATABASE_URL"
	envLogLevel    = "USERSD_LOG_LEVEL"
	envHTTPAddr    = "USERSD_HTTP_ADDR"

	flagDatabaseURL = "database-url"

	// defaultDatabaseURL is used when neither DATABASE_URL nor
	// -database-url is set: the local development server, where usersd
	// creates its database if it is missing.
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/usersd?sslmode=disable"
)

// envMigrateDatabaseURL is the owner's URL: with it, migrations (and
// rebuilds) run as the owner and DATABASE_URL is the service's role.
const envMigrateDatabaseURL = "USERSD_MIGRATE_DATABASE_URL"

// newLogger returns the text logger on w at the level of USERSD_LOG_LEVEL
// (debug, info, warn or error; default info).
func newLogger(w io.Writer, getenv func(string) string) (*slog.Logger, error) {
	var level slog.Level
	if v, src := logLevelSetting.lookup(nil, getenv); level.UnmarshalText([]byte(v)) != nil {
		return nil, fmt.Errorf("%s=%q: want debug, info, warn or error", src, v)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), nil
}

// databaseFlag registers -database-url on fs. Read the result with
// resolveDatabase.
func databaseFlag(fs *flag.FlagSet) { databaseURLSetting.register(fs, "") }

// database is where usersd keeps its data.
type database struct {
	URL    string
	Source string // what set URL, for messages: "-database-url", "DATABASE_URL" or "default"

	// CreateIfMissing is true for the built-in default only: a database
	// that someone configured is theirs to create.
	CreateIfMissing bool

	config *pgx.ConnConfig

	// owner, when set, is the same database as the role that owns its
	// schema (USERSD_MIGRATE_DATABASE_URL; the embedded default's
	// superuser): migrations and rebuilds run as it, and it grants URL's
	// role, the service's, what usersd serve needs. Nil: URL's role does
	// everything, as one role.
	owner *database
}

// migrator is db as the role that migrates and rebuilds: its owner, when
// it has two roles.
func (db database) migrator() database {
	if db.owner == nil {
		return db
	}
	o := *db.owner
	o.CreateIfMissing = db.CreateIfMissing
	return o
}

// serviceRole is the role that the owner grants what usersd serve needs:
// DATABASE_URL's, when the owner is another; "" with one role.
func (db database) serviceRole() string {
	if db.owner == nil || db.owner.config.User == db.config.User {
		return ""
	}
	return db.config.User
}

// resolveDatabase picks the database URL: the -database-url flag if it was
// given, else DATABASE_URL if it is not empty, else the default. It checks
// that the URL parses, naming its source if it does not.
func resolveDatabase(fs *flag.FlagSet, getenv func(string) string) (database, error) {
	var db database
	db.URL, db.Source = databaseURLSetting.lookup(fs, getenv)
	db.CreateIfMissing = db.Source == "default"
	if strings.TrimSpace(db.URL) == "" {
		return database{}, usageErrorf("%s is empty: want a PostgreSQL URL such as %s", db.Source, defaultDatabaseURL)
	}
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		// pgx leaves passwords out of its messages.
		return database{}, usageErrorf("%s is not a valid PostgreSQL connection URL (want e.g. %s): %v",
			db.Source, defaultDatabaseURL, err)
	}
	if cfg.Database == "" {
		return database{}, usageErrorf("%s names no database: want a PostgreSQL URL such as %s", db.Source, defaultDatabaseURL)
	}
	db.config = cfg
	return db, resolveOwner(&db, getenv)
}

// resolveOwner reads USERSD_MIGRATE_DATABASE_URL, the owner's URL of the
// same database, into db.owner.
func resolveOwner(db *database, getenv func(string) string) error {
	v, _ := migrateURLSetting.trimmed(nil, getenv)
	if v == "" {
		return nil
	}
	if db.CreateIfMissing {
		return usageErrorf("%s is set but %s is not: set %s to the service's role and %s to the owner's, on the same database",
			envMigrateDatabaseURL, envDatabaseURL, envDatabaseURL, envMigrateDatabaseURL)
	}
	cfg, err := pgx.ParseConfig(v)
	if err != nil {
		return usageErrorf("%s is not a valid PostgreSQL connection URL (want e.g. %s): %v", envMigrateDatabaseURL, defaultDatabaseURL, err)
	}
	if cfg.Database != db.config.Database {
		return usageErrorf("%s names database %q and %s %q: want the same database, as its owner and as the service's role",
			envMigrateDatabaseURL, cfg.Database, db.Source, db.config.Database)
	}
	db.owner = &database{URL: v, Source: envMigrateDatabaseURL, config: cfg}
	return nil
}

// configuredBy names what takes usersd off the embedded default: the
// database's source when someone configured one, else ESDB_URL when set;
// "" on the embedded default. Development conveniences that would leak in
// production (the development mailbox) are on by default only there.
func configuredBy(db database, getenv func(string) string) string {
	switch {
	case !db.CreateIfMissing:
		return db.Source
	case strings.TrimSpace(esdbURLSetting.get(getenv)) != "":
		return envESDBURL
	}
	return ""
}

// String describes the database without its password, for logs.
func (db database) String() string {
	if db.config == nil {
		return "(unresolved database)"
	}
	return db.describe(db.config.Database)
}

// describe names database name on db's server as db's user, without a
// password.
func (db database) describe(name string) string {
	host := db.config.Host
	if strings.HasPrefix(host, "/") {
		host = "unix:" + host // a socket directory
	}
	return fmt.Sprintf("%s@%s:%d/%s", db.config.User, host, db.config.Port, name)
}

// connectTimeout bounds each attempt to reach the server when the URL sets
// no connect_timeout, so that an unreachable host fails instead of hanging.
const connectTimeout = 10 * time.Second

// ensureExists creates db's database if it does not exist, connecting to the
// "postgres" maintenance database of the same server as the same user.
// It reports whether it created it.
func (db database) ensureExists(ctx context.Context) (created bool, err error) {
	name := db.config.Database
	conn, err := db.connect(ctx, "postgres")
	if err != nil {
		return false, fmt.Errorf("connect to %s to create database %q: %w", db.describe("postgres"), name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for database %q: %w", name, err)
	}
	if exists {
		return false, nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
	return true, nil
}

// ping checks that db answers, so that a wrong URL or a stopped server fails
// with a clear message, and within connectTimeout.
func (db database) ping(ctx context.Context) error {
	conn, err := db.connect(ctx, db.config.Database)
	if err != nil {
		return fmt.Errorf("connect to %s (from %s): %w", db, db.Source, err)
	}
	return conn.Close(ctx)
}

// connect opens a connection to database name on db's server.
func (db database) connect(ctx context.Context, name string) (*pgx.Conn, error) {
	cfg := db.config.Copy()
	cfg.Database = name
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	return pgx.ConnectConfig(ctx, cfg)
}

const (
	envJWTSecret      = "USERSD_JWT_SECRET"
	envInvitationTTL  = "USERSD_INVITATION_TTL"
	envTrustedProxies = "USERSD_TRUSTED_PROXIES"

	defaultInvitationTTL = 168 * time.Hour
)

// invitationTTL reads USERSD_INVITATION_TTL: a positive Go duration,
// default 168h.
func invitationTTL(getenv func(string) string) (time.Duration, error) {
	v, src := invitationTTLSetting.trimmed(nil, getenv)
	if v == "" {
		return defaultInvitationTTL, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, usageErrorf("%s=%q: want a positive Go duration such as 168h or 72h30m", src, v)
	}
	return d, nil
}

// trustedProxies reads USERSD_TRUSTED_PROXIES: addresses or CIDR prefixes,
// comma-separated. Default none: X-Forwarded-For is ignored.
func trustedProxies(getenv func(string) string) ([]netip.Prefix, error) {
	v, src := trustedProxiesSetting.lookup(nil, getenv)
	return parseList(v, func(part string) (netip.Prefix, error) {
		if p, err := netip.ParsePrefix(part); err == nil {
			return p.Masked(), nil
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}, func(_ int, part string, _ error) error {
		return usageErrorf("%s: %q is neither an IP address nor a CIDR prefix", src, part)
	})
}

// devSecret is a secret the embedded default makes once and keeps in a
// file of the user's configuration directory
// ($XDG_CONFIG_HOME/usersd/<file>, mode 0600), so that what it signed
// survives restarts: the JWT secret, the audit signing key.
type devSecret struct {
	file string // its name in that directory, e.g. "dev-jwt-secret"
	what string // for messages, e.g. "development JWT secret"
	env  string // the variable that replaces it
	// make makes a new secret, as the file keeps it (without a newline).
	make func() ([]byte, error)
	// check says what is wrong with what the file holds (trimmed), if it
	// is not a secret of the kind, e.g. "is shorter than 32 bytes".
	check func([]byte) error
}

// path is where the secret is kept: false when there is no HOME or
// XDG_CONFIG_HOME to keep it in.
func (d devSecret) path(getenv func(string) string) (string, bool) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "usersd", d.file), true
}

// keep answers the kept secret, making and keeping one the first time.
func (d devSecret) keep(e *env) ([]byte, error) {
	path, ok := d.path(e.Getenv)
	if !ok {
		return nil, usageErrorf("%s is not set and there is no HOME or XDG_CONFIG_HOME to keep a %s in", d.env, d.what)
	}
	if secret, err := d.read(path); err != nil || secret != nil {
		return secret, err
	}
	secret, err := d.make()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keep the %s: %w", d.what, err)
	}
	// Written whole under another name, then linked into place: a process
	// starting at the same moment (serve and token on a first run) either
	// wins or reads the winner's secret, never half of one or its own.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+d.file+"-*")
	if err != nil {
		return nil, fmt.Errorf("keep the %s: %w", d.what, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(secret, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		if secret, err := d.read(path); err != nil || secret != nil {
			return secret, err
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keep the %s: %w", d.what, err)
	}
	e.Log.Warn("no "+d.env+": made a random "+d.what, "file", path)
	return secret, nil
}

// read reads the kept secret: nil if there is none yet. One that others
// may read is refused: with the JWT secret anyone could sign in as any
// Admin, with the audit key sign any history.
func (d devSecret) read(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the %s: %w", d.what, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the %s %s may be read by others (mode %s): chmod 600 it, or set %s", d.what, path, info.Mode().Perm(), d.env)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the %s: %w", d.what, err)
	}
	b = bytes.TrimSpace(b)
	if err := d.check(b); err != nil {
		return nil, fmt.Errorf("the %s %s %v: remove it to make a new one, or set %s", d.what, path, err, d.env)
	}
	return b, nil
}

// secretOr reads a secret that a variable configures: its value v, read
// by parse (bad tells the operator what is wrong with it); without v,
// missing(by) off the embedded default (configuredBy names by), where the
// secret is required, and on it the one d keeps, read by parse too.
func secretOr[T any](e *env, db database, d devSecret, v string, parse func(string) (T, error), bad func(v string, err error) error, missing func(by string) error) (T, error) {
	var zero T
	if v != "" {
		x, err := parse(v)
		if err != nil {
			return zero, bad(v, err)
		}
		return x, nil
	}
	if by := configuredBy(db, e.Getenv); by != "" {
		return zero, missing(by)
	}
	kept, err := d.keep(e)
	if err != nil {
		return zero, err
	}
	return parse(string(kept))
}

// parseList reads the comma-separated items of v with parse, blank ones
// skipped; bad tells what is wrong with the item numbered i (from 1),
// whose text is item.
func parseList[T any](v string, parse func(string) (T, error), bad func(i int, item string, err error) error) ([]T, error) {
	var out []T
	for i, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		x, err := parse(part)
		if err != nil {
			return out, bad(i+1, part, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// devJWTSecret is the embedded default's JWT secret.
var devJWTSecret = devSecret{
	file: "dev-jwt-secret", what: "development JWT secret", env: envJWTSecret,
	make: func() ([]byte, error) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(raw)), nil
	},
	check: func(b []byte) error {
		if len(b) < httpapi.MinSecretLength {
			return fmt.Errorf("is shorter than %d bytes", httpapi.MinSecretLength)
		}
		return nil
	},
}

// jwtSecret reads USERSD_JWT_SECRET (at least 32 bytes). It is required
// unless usersd runs on the embedded default, which makes a random secret
// once and keeps it (devJWTSecret).
func jwtSecret(e *env, db database) ([]byte, error) {
	return secretOr(e, db, devJWTSecret, jwtSecretSetting.get(e.Getenv), func(v string) ([]byte, error) {
		if len(v) < httpapi.MinSecretLength {
			return nil, errors.New("too short")
		}
		return []byte(v), nil
	}, func(v string, _ error) error {
		return usageErrorf("%s is %d bytes long: want at least %d (e.g. openssl rand -hex 32)", envJWTSecret, len(v), httpapi.MinSecretLength)
	}, func(by string) error {
		return usageErrorf("%s is not set: it is required with %s (at least %d bytes, e.g. openssl rand -hex 32)", envJWTSecret, by, httpapi.MinSecretLength)
	})
}
