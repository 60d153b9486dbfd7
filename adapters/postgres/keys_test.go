package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// TestServiceRoleKeepsKeys: usersd serve's role may create keys, destroy
// them (erase) and re-wrap them, and can neither remove a key's row (the
// tombstone that keeps an erased account erased) nor bring a destroyed key
// back; the owner cannot either, outside the maintenance procedure.
func TestServiceRoleKeepsKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, dbURL := pgtest.New(t)
	svc, _ := pgtest.Service(t, dbURL)
	jane, john := uuid.New(), uuid.New()

	// What the key store does.
	exec(t, svc, `INSERT INTO account_keys (user_id, wrapped, kek_id, created_at) VALUES ($1, '\x01', 'k1', now()), ($2, '\x02', 'k1', now())`, jane, john)
	exec(t, svc, `UPDATE account_keys SET wrapped = '\x03', kek_id = 'k2' WHERE user_id = $1`, john) // a rotation
	exec(t, svc, `UPDATE account_keys SET wrapped = NULL, kek_id = NULL, erased_at = now() WHERE user_id = $1`, jane)
	exec(t, svc, `INSERT INTO account_keys AS k (user_id, created_at, erased_at) VALUES ($1, now(), now())
		ON CONFLICT (user_id) DO UPDATE SET wrapped = NULL, kek_id = NULL, erased_at = coalesce(k.erased_at, excluded.erased_at)`, jane)
	exec(t, svc, `INSERT INTO server_keys (name, wrapped, kek_id) VALUES ('stream-names', '\x01', 'k1')`)
	exec(t, svc, `UPDATE server_keys SET wrapped = '\x02', kek_id = 'k2'`)
	var n int
	if err := svc.QueryRow(ctx, `SELECT (SELECT count(*) FROM account_keys WHERE wrapped IS NULL) + (SELECT count(*) FROM server_keys)`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the service reads %d rows (%v), want jane's tombstone and the server key", n, err)
	}

	unerase := `UPDATE account_keys SET wrapped = '\x09', kek_id = 'k1', erased_at = NULL WHERE user_id = '` + jane.String() + `'`
	refused := []string{
		`DELETE FROM account_keys`,
		`TRUNCATE account_keys`,
		unerase,
		`UPDATE account_keys SET erased_at = erased_at - interval '1 day' WHERE user_id = '` + jane.String() + `'`,
		`UPDATE account_keys SET user_id = gen_random_uuid() WHERE user_id = '` + jane.String() + `'`,
		`DELETE FROM server_keys`,
		`TRUNCATE server_keys`,
		`SET LOCAL usersd.maintenance = on; DELETE FROM account_keys`,
		`ALTER TABLE account_keys DISABLE TRIGGER account_keys_no_delete`,
		`DROP TRIGGER server_keys_no_delete ON server_keys`,
		`CREATE OR REPLACE FUNCTION keys_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`SET LOCAL session_replication_role = replica; DELETE FROM account_keys`,
	}
	for _, sql := range refused {
		err := inTx(ctx, svc, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("as the service's role, %s: got %v, want it refused (SQLSTATE 42501)", sql, err)
		}
	}
	var may bool
	if err := owner.QueryRow(ctx, `SELECT bool_or(has_table_privilege($1, t, p))
		FROM unnest(ARRAY['account_keys', 'server_keys']) t, unnest(ARRAY['DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p`,
		pgtest.ServiceRole).Scan(&may); err != nil || may {
		t.Errorf("the service's role may DELETE or TRUNCATE keys: %v (%v); want neither", may, err)
	}

	// The owner too, but for its maintenance procedure.
	for _, sql := range []string{`DELETE FROM account_keys`, `TRUNCATE server_keys`, unerase,
		`SET LOCAL session_replication_role = replica; DELETE FROM account_keys`} {
		err := inTx(ctx, owner, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("as the owner, %s: got %v, want it refused (SQLSTATE 42501)", sql, err)
		}
	}
	if err := inTx(ctx, owner, `SET LOCAL usersd.maintenance = on; DELETE FROM account_keys WHERE user_id = '`+john.String()+`'`); err != nil {
		t.Errorf("the owner's maintenance: %v", err)
	}
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM account_keys WHERE user_id = $1 AND wrapped IS NULL AND erased_at IS NOT NULL`, jane).Scan(&n); err != nil || n != 1 {
		t.Errorf("jane's tombstone after the refused changes: %d rows (%v), want 1", n, err)
	}

	// A row cannot claim a key and an erasure, or neither.
	for _, sql := range []string{
		`INSERT INTO account_keys (user_id, wrapped, kek_id, created_at, erased_at) VALUES (gen_random_uuid(), '\x01', 'k1', now(), now())`,
		`INSERT INTO account_keys (user_id, created_at) VALUES (gen_random_uuid(), now())`,
		`INSERT INTO account_keys (user_id, wrapped, created_at) VALUES (gen_random_uuid(), '\x01', now())`,
	} {
		err := inTx(ctx, svc, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
			t.Errorf("%s: got %v, want a check violation", sql, err)
		}
	}

	// DELETE held through PUBLIC stops the next start.
	exec(t, owner, "GRANT DELETE ON account_keys TO PUBLIC")
	if err := postgres.GrantService(ctx, dbURL, pgtest.ServiceRole); err == nil || !strings.Contains(err.Error(), "through PUBLIC") {
		t.Errorf("GrantService with DELETE on account_keys granted to PUBLIC: got %v, want it refused", err)
	}
}
