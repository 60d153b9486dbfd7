package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// GrantService gives the service's role what usersd serve needs in the
// database at ownerURL, and nothing more: SELECT and INSERT on the events
// and the audit entries, the read models', outbox's and mailer's tables to
// read and write, SELECT on the migrations' table (usersd_grant_service of
// migration 00008). It connects as the owner, after the migrations; it
// changes nothing when nothing is missing, so it runs on every start and so
// covers the tables of later migrations. It fails when role does not exist,
// owns anything in the database, is a superuser, may create roles, or is
// (a member of) the owner.
func GrantService(ctx context.Context, ownerURL, role string) error {
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return fmt.Errorf("grant the service's role: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT usersd_grant_service($1)", role); err != nil {
		return fmt.Errorf("grant the service's role %q what it needs: %w", role, err)
	}
	return nil
}

// CreateLoginRole creates role with LOGIN and nothing else (and password,
// if not empty) unless it exists, connecting with adminURL, which must be
// allowed to create roles. It reports whether it created the role. An
// existing role is left as it is: GrantService refuses one with more
// rights than a service's role may have.
func CreateLoginRole(ctx context.Context, adminURL, role, password string) (created bool, err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return false, fmt.Errorf("create role %q: connect: %w", role, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return false, fmt.Errorf("look for role %q: %w", role, err)
	}
	if exists {
		return false, nil
	}
	sql := "CREATE ROLE " + pgx.Identifier{role}.Sanitize() + " LOGIN"
	if password != "" {
		// CREATE ROLE takes no parameters: quote the literal as the
		// server reads it.
		quoted, err := conn.PgConn().EscapeString(password)
		if err != nil {
			return false, fmt.Errorf("create role %q: %w", role, err)
		}
		sql += " PASSWORD '" + quoted + "'"
	}
	_, err = conn.Exec(ctx, sql)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505") { // duplicate_object, unique_violation: made meanwhile
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create role %q: %w", role, err)
	}
	return true, nil
}

// Privileged tells why the role pool connects as is not a service's role
// of its own: it "is a superuser" or "owns the tables" (the events table,
// or acts as its owner), so it could change or remove events and audit
// entries behind their guards. It answers "" for a role of its own.
func Privileged(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var super, owner bool
	err := pool.QueryRow(ctx, `
		SELECT r.rolsuper,
		       coalesce(pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE'), false)
		FROM pg_catalog.pg_roles r
		LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass('public.events')
		WHERE r.rolname = current_user`).Scan(&super, &owner)
	switch {
	case err != nil:
		return "", fmt.Errorf("look at the database role: %w", err)
	case super:
		return "is a superuser", nil
	case owner:
		return "owns the tables", nil
	}
	return "", nil
}
