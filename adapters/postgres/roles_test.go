package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// TestServiceRoleCannotRewriteHistory: usersd serve's role may read and
// append events and audit entries, and can neither change nor remove them,
// nor disarm the guards that refuse that to everybody: it cannot replace
// their functions, drop or disable their triggers, or get around them.
func TestServiceRoleCannotRewriteHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, dbURL := pgtest.New(t)
	svc, _ := pgtest.Service(t, dbURL)
	ws := uuid.New()

	// What the service does: append, and read.
	exec(t, svc, `SELECT status FROM append_events($1, -2, $2, ARRAY['WorkspaceCreated'], ARRAY['{"name":"x"}'::jsonb], ARRAY[NULL::jsonb])`,
		"workspace-"+ws.String(), []uuid.UUID{uuid.New()})
	exec(t, svc, `INSERT INTO audit_entries (workspace_id, seq, event_id, occurred_at, actor_system, action, details,
		commit_position, prepare_position, prev_hash, hash) VALUES ($1, 1, $2, now(), true, 'WorkspaceCreated', '{}', 1, 1, '', 'h')`,
		ws, uuid.New())
	var n int
	if err := svc.QueryRow(ctx, `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM audit_entries)`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the service reads %d rows (%v), want the event and the entry it wrote", n, err)
	}

	refused := []string{
		`UPDATE events SET data = '{"name":"forged"}'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
		`UPDATE audit_entries SET actor_email = 'mallory@example.test'`,
		`DELETE FROM audit_entries`,
		`TRUNCATE audit_entries`,
		// The maintenance procedure is the owner's only.
		`SET LOCAL usersd.maintenance = on; UPDATE events SET data = '{}'`,
		// Disarm the guards.
		`CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`ALTER TABLE events DISABLE TRIGGER events_no_update_delete`,
		`ALTER TABLE events DISABLE TRIGGER USER`,
		`ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_delete`,
		`DROP TRIGGER events_no_update_delete ON events`,
		`DROP TRIGGER audit_entries_no_truncate ON audit_entries`,
		`DROP FUNCTION events_refuse_change() CASCADE`,
		`ALTER FUNCTION audit_refuse_change() RENAME TO gone`,
		`ALTER TABLE audit_entries RENAME TO audit_entries_old`,
		`DROP TABLE events`,
		`SET LOCAL session_replication_role = replica`,
		// Put something of its own in their place, or grant itself more.
		`CREATE TABLE public.shadow (id int)`,
		`CREATE FUNCTION public.shadow() RETURNS int LANGUAGE sql AS 'SELECT 1'`,
		`CREATE SCHEMA shadow`,
		`SELECT usersd_grant_service(current_user)`,
	}
	for _, sql := range refused {
		err := inTx(ctx, svc, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("as the service's role, %s: got %v, want it refused (SQLSTATE 42501, insufficient privilege)", sql, err)
		}
	}

	// A grant to itself grants nothing (PostgreSQL only warns).
	_ = inTx(ctx, svc, `GRANT UPDATE, DELETE, TRUNCATE ON events, audit_entries TO CURRENT_USER`)
	var may bool
	if err := owner.QueryRow(ctx, `SELECT bool_or(has_table_privilege($1, t, p))
		FROM unnest(ARRAY['events', 'audit_entries']) t, unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) p`,
		pgtest.ServiceRole).Scan(&may); err != nil || may {
		t.Errorf("the service's role may UPDATE, DELETE or TRUNCATE events or audit entries: %v (%v); want none", may, err)
	}

	if got := ownedBy(t, owner, pgtest.ServiceRole); len(got) > 0 {
		t.Errorf("the service's role owns %q, want nothing", got)
	}
	if err := owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM audit_entries)`).Scan(&n); err != nil || n != 2 {
		t.Errorf("after the refused changes: %d rows (%v), want the 2 written", n, err)
	}
	checkGuards(t, owner)
}

// TestEventsAreAppendOnly: the events refuse UPDATE, DELETE and TRUNCATE to
// their owner (and a superuser) too, even as a replica; only the owner's
// deliberate maintenance procedure gets past the guard.
func TestEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, _ := pgtest.New(t) // the owner is the test server's superuser
	stream := "workspace-" + uuid.NewString()
	exec(t, owner, `SELECT append_events($1, -2, $2, ARRAY['WorkspaceCreated'], ARRAY['{"name":"x"}'::jsonb], ARRAY[NULL::jsonb])`,
		stream, []uuid.UUID{uuid.New()})

	for _, sql := range []string{
		`UPDATE events SET data = '{"name":"forged"}'`,
		`DELETE FROM events`,
		`TRUNCATE events`,
		`SET LOCAL session_replication_role = replica; UPDATE events SET data = '{}'`,
		`SET LOCAL session_replication_role = replica; TRUNCATE events`,
		`SET LOCAL usersd.maintenance = yes; DELETE FROM events`,
	} {
		err := inTx(ctx, owner, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("as the owner, %s: got %v, want it refused as append-only (SQLSTATE 42501)", sql, err)
		}
	}
	var data string
	if err := owner.QueryRow(ctx, `SELECT data->>'name' FROM events WHERE stream_id = $1`, stream).Scan(&data); err != nil || data != "x" {
		t.Fatalf("the event after refused changes: %q, %v; want it unchanged", data, err)
	}

	// The maintenance procedure: the owner, in one transaction.
	if err := inTx(ctx, owner, `SET LOCAL usersd.maintenance = on; UPDATE events SET data = '{"name":"fixed"}' WHERE stream_id = '`+stream+`'`); err != nil {
		t.Fatalf("the owner's maintenance: %v", err)
	}
	if err := owner.QueryRow(ctx, `SELECT data->>'name' FROM events WHERE stream_id = $1`, stream).Scan(&data); err != nil || data != "fixed" {
		t.Errorf("after maintenance: %q, %v; want fixed", data, err)
	}
	// It ended with its transaction.
	if err := inTx(ctx, owner, `DELETE FROM events`); err == nil {
		t.Errorf("DELETE after the maintenance transaction: got no error, want it refused again")
	}
	checkGuards(t, owner)
}

// TestGrantServiceRefusesPowerfulRoles: the grant refuses to make a service
// role of one that could rewrite the events anyway.
func TestGrantServiceRefusesPowerfulRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	suffix := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	var roles []string
	role := func(name, options string) string {
		name = "usersd_test_" + name + "_" + suffix
		if _, err := admin.Exec(ctx, "CREATE ROLE "+name+" LOGIN "+options); err != nil {
			t.Fatal(err)
		}
		roles = append(roles, name)
		return name
	}
	// Dropped after the database (cleanups run last-in first-out), which
	// holds their grants and objects.
	t.Cleanup(func() {
		for _, r := range roles {
			if _, err := admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	super := role("super", "SUPERUSER")
	creator := role("creator", "CREATEROLE")
	owning := role("owning", "")
	member := role("member", "")
	missing := "usersd_test_missing_" + suffix

	owner, dbURL := pgtest.New(t)
	exec(t, owner, "CREATE TABLE owned_by_service (id int)")
	exec(t, owner, "ALTER TABLE owned_by_service OWNER TO "+owning)
	var ownerName string
	if err := owner.QueryRow(ctx, "SELECT current_user").Scan(&ownerName); err != nil {
		t.Fatal(err)
	}
	exec(t, owner, "GRANT "+pgtest.ServiceRole+" TO "+member) // harmless on its own
	exec(t, owner, "GRANT "+ownerName+" TO "+member)          // the owner's rights
	for _, tt := range []struct{ role, want string }{
		{missing, "does not exist"},
		{ownerName, "is a superuser, may create roles, or is (a member of) the owner"},
		{super, "is a superuser"},
		{creator, "may create roles"},
		{member, "a member of) the owner"},
		{owning, "owns objects"},
	} {
		err := postgres.GrantService(ctx, dbURL, tt.role)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("GrantService(%s): got %v, want an error saying %q", tt.role, err, tt.want)
		}
	}
	// The test database's own service role passes, and again: nothing to do.
	for range 2 {
		if err := postgres.GrantService(ctx, dbURL, pgtest.ServiceRole); err != nil {
			t.Errorf("GrantService(%s): %v", pgtest.ServiceRole, err)
		}
	}
}

// TestGrantServiceRevokesWhatIsTooMuch: a grant beyond what the service
// needs (here UPDATE of the events, given by hand) is taken back on the
// next start; one it holds through PUBLIC stops the start.
func TestGrantServiceRevokesWhatIsTooMuch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, dbURL := pgtest.New(t)
	exec(t, owner, "GRANT UPDATE, TRUNCATE ON events TO "+pgtest.ServiceRole)
	if err := postgres.GrantService(ctx, dbURL, pgtest.ServiceRole); err != nil {
		t.Fatalf("GrantService: %v", err)
	}
	var may bool
	if err := owner.QueryRow(ctx, "SELECT has_table_privilege($1, 'events', 'UPDATE') OR has_table_privilege($1, 'events', 'TRUNCATE')",
		pgtest.ServiceRole).Scan(&may); err != nil || may {
		t.Errorf("after GrantService, the service's role may UPDATE or TRUNCATE events: %v (%v); want neither", may, err)
	}
	exec(t, owner, "GRANT DELETE ON audit_entries TO PUBLIC")
	if err := postgres.GrantService(ctx, dbURL, pgtest.ServiceRole); err == nil || !strings.Contains(err.Error(), "through PUBLIC") {
		t.Errorf("GrantService with DELETE on audit_entries granted to PUBLIC: got %v, want it refused", err)
	}
}

// checkGuards: the guard triggers are still there and enabled ALWAYS.
func checkGuards(t *testing.T, owner *pgxpool.Pool) {
	t.Helper()
	rows, _ := owner.Query(context.Background(), `
		SELECT c.relname || '.' || tg.tgname || ':' || tg.tgenabled::text || ':' || p.proname
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_proc p ON p.oid = tg.tgfoid
		WHERE c.relname IN ('events', 'audit_entries') AND NOT tg.tgisinternal ORDER BY 1`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"audit_entries.audit_entries_no_truncate:A:audit_refuse_change",
		"audit_entries.audit_entries_no_update_delete:A:audit_refuse_change",
		"events.events_no_truncate:A:events_refuse_change",
		"events.events_no_update_delete:A:events_refuse_change",
		// Not a guard of the history but of the subscriptions (migration
		// 00021): disabled, they fall back to the slower horizon.
		"events.events_writer_marker:A:events_writer_marker",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("guards (table.trigger:enabled:function): got %q, want %q", got, want)
	}
}

// ownedBy lists what role owns in the database: relations, functions,
// schemas, types.
func ownedBy(t *testing.T, pool *pgxpool.Pool, role string) []string {
	t.Helper()
	rows, _ := pool.Query(context.Background(), `
		SELECT 'relation ' || relname FROM pg_class WHERE relowner = to_regrole($1)
		UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proowner = to_regrole($1)
		UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = to_regrole($1)
		UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = to_regrole($1)`, role)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// inTx runs the statements of sql in one transaction: a SET LOCAL first
// when sql starts with one, separated by "; ".
func inTx(ctx context.Context, pool *pgxpool.Pool, sql string) error {
	stmts := []string{sql}
	if strings.HasPrefix(sql, "SET LOCAL ") {
		stmts = strings.SplitN(sql, "; ", 2)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
}
