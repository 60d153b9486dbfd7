package audit_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/projectionstest"
)

// scenario returns a small history over two workspaces, with every kind of
// optional field set in some entries and unset in others.
func scenario(h *history) (a, b uuid.UUID, events []domain.RecordedEvent) {
	a, b = uuid.New(), uuid.New()
	owner := newPerson("ada@acme.test")
	inv := newPerson("ivy@example.test")
	events = []domain.RecordedEvent{
		h.next(domain.WorkspaceCreated{WorkspaceID: a, Name: "Acme", OwnerUserID: owner.id, OwnerEmail: owner.email, OwnerName: "Ada"},
			withCorrelation("c1", "")),
		h.next(domain.WorkspaceCreated{WorkspaceID: b, Name: "Beta", OwnerUserID: owner.id, OwnerEmail: owner.email}),
		h.next(domain.UserInvited{WorkspaceID: a, InvitationID: uuid.New(), UserID: inv.id, Email: inv.email, Role: "Editor",
			InviterRole: "Admin", ExpiresAt: t0.Add(time.Hour)}, by(owner.actor()), withRequest("203.0.113.1", "curl/8"), withCorrelation("c2", "c1")),
		h.next(domain.InvitationEmailSent{WorkspaceID: a, UserID: inv.id, Attempt: 1}),
		h.next(domain.InvitationAccepted{WorkspaceID: a, UserID: inv.id, Email: inv.email, Name: "Ivy", Role: "Editor"}, by(inv.actor())),
		h.next(domain.WorkspaceSettingsChanged{WorkspaceID: b, ManagersMayGrantAdmin: true}, by(owner.actor()), withRequest("", "ua-only")),
		h.next(domain.RoleChanged{WorkspaceID: a, UserID: inv.id, Email: inv.email, FromRole: "Editor", ToRole: "Admin"}, by(owner.actor())),
		h.next(domain.UserLoggedIn{WorkspaceID: a, UserID: inv.id, LoggedInAt: t0}, by(inv.actor()), withRequest("192.0.2.1", "")),
	}
	return a, b, events
}

// appliedScenario gives a fresh database with the scenario applied.
func appliedScenario(t *testing.T) (pool *pgxpool.Pool, a, b uuid.UUID, events []domain.RecordedEvent) {
	t.Helper()
	pool, _ = pgtest.New(t)
	var h history
	a, b, events = scenario(&h)
	apply(t, pool, events)
	return pool, a, b, events
}

// TestHashesAreDeterministic applies the same events into two fresh
// schemas of one database, in different batch sizes, and into the live
// tables of another database: every hash is the same.
func TestHashesAreDeterministic(t *testing.T) {
	pool, h := fresh(t)
	other, _ := pgtest.New(t)
	_, _, events := scenario(h)
	for _, s := range []string{"rebuild_one", "rebuild_two"} {
		createSchema(t, pool, s)
	}
	applyIn(t, pool, "rebuild_one", events)
	for i := range events {
		applyIn(t, pool, "rebuild_two", events[i:i+1])
	}
	for i := 0; i < len(events); i += 3 {
		apply(t, other, events[i:min(i+3, len(events))])
	}
	one, two, live := chain(t, pool, "rebuild_one"), chain(t, pool, "rebuild_two"), chain(t, other, "public")
	if len(one) != len(events) {
		t.Fatalf("entries: got %d, want %d", len(one), len(events))
	}
	if !reflect.DeepEqual(two, one) {
		t.Errorf("chain applied one event a batch:\n got %+v\nwant %+v", two, one)
	}
	if !reflect.DeepEqual(live, one) {
		t.Errorf("chain in another database:\n got %+v\nwant %+v", live, one)
	}
	projectionstest.WantLiveEmpty(t, pool, "audit_entries")
}

// TestHashEncodingIsStable pins the canonical encoding: a change to it
// would make every stored chain fail verification, so it must be a
// deliberate, versioned one.
func TestHashEncodingIsStable(t *testing.T) {
	pool, _ := fresh(t)
	ws := uuid.MustParse("0b8d5f8e-6c53-4d6f-9a57-3f3c1b8a9e01")
	user := uuid.MustParse("5a2c4a1e-7b0d-4b8e-8f61-2d9e3c4b5a6f")
	admin := uuid.MustParse("9e1f2d3c-4b5a-4697-8877-665544332211")
	ev := domain.RecordedEvent{
		Envelope: domain.Envelope{
			Event: domain.RoleChanged{WorkspaceID: ws, UserID: user, Email: "ivy@example.test", FromRole: "Editor", ToRole: "Manager", ChangedBy: admin},
			Metadata: domain.Metadata{
				EventID:       uuid.MustParse("c0ffee00-0000-4000-8000-000000000001"),
				SchemaVersion: 1,
				OccurredAt:    time.Date(2025, 3, 1, 10, 0, 0, 123456789, time.FixedZone("CET", 3600)),
				Actor:         domain.Actor{UserID: admin, Email: "Ada@Acme.test"},
				CorrelationID: "corr",
				Request:       &domain.RequestContext{IP: "203.0.113.9", UserAgent: "Firefox"},
			},
		},
		StreamID: "workspace-" + ws.String(),
		Position: domain.Position{Commit: 42, Prepare: 7},
	}
	apply(t, pool, []domain.RecordedEvent{ev})
	got := chain(t, pool, "public")
	// Computed independently of this package (a few lines of Python over
	// the encoding documented in hash.go): sha256 of "usersd.audit.v1\n"
	// then each field as "<len>:<value>\n" or "-\n" for NULL, time in UTC
	// truncated to microseconds, details as sorted compact JSON.
	const want = "4fd06ee93e9d98e8386e409be582ddb22edeeced6469e055e676a41908fd1a14"
	if len(got) != 1 || got[0].Hash != want {
		t.Errorf("hash of a fixed entry: got %+v, want hash %s", got, want)
	}
}

// TestEntriesAreAppendOnly: the database refuses UPDATE, DELETE and
// TRUNCATE of audit entries, to the owner and a superuser alike, and even
// with session_replication_role = replica.
func TestEntriesAreAppendOnly(t *testing.T) {
	t.Parallel()
	pool, a, _, _ := appliedScenario(t)
	before := chain(t, pool, "public")
	checkRefusals(t, pool, "public", a)
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("entries after refused changes:\n got %+v\nwant %+v", after, before)
	}
}

// checkRefusals tries every kind of change to schema's audit_entries.
func checkRefusals(t *testing.T, pool *pgxpool.Pool, schema string, ws uuid.UUID) {
	t.Helper()
	table := pgx.Identifier{schema, "audit_entries"}.Sanitize()
	for _, c := range []struct{ name, setup, sql string }{
		{"UPDATE", "", `UPDATE ` + table + ` SET actor_email = 'mallory@example.test' WHERE workspace_id = $1`},
		{"DELETE", "", `DELETE FROM ` + table + ` WHERE workspace_id = $1`},
		{"TRUNCATE", "", `TRUNCATE ` + table},
		{"UPDATE as replica", "SET LOCAL session_replication_role = replica", `UPDATE ` + table + ` SET hash = '' WHERE workspace_id = $1`},
		{"DELETE as replica", "SET LOCAL session_replication_role = replica", `DELETE FROM ` + table + ` WHERE workspace_id = $1`},
		{"TRUNCATE as replica", "SET LOCAL session_replication_role = replica", `TRUNCATE ` + table},
	} {
		err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
			if c.setup != "" {
				if _, err := tx.Exec(context.Background(), c.setup); err != nil {
					t.Fatalf("%s: %v", c.setup, err)
				}
			}
			var args []any
			if strings.Contains(c.sql, "$1") {
				args = append(args, ws)
			}
			_, err := tx.Exec(context.Background(), c.sql, args...)
			return err
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s on %s: got %v, want it refused as append-only (SQLSTATE 42501)", c.name, table, err)
		}
	}
}

// tamper changes audit_entries behind the triggers' back, as someone with
// the owner's rights could.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		for _, s := range []string{`ALTER TABLE audit_entries DISABLE TRIGGER USER`, sql, `ALTER TABLE audit_entries ENABLE TRIGGER USER`} {
			a := args
			if s != sql {
				a = nil
			}
			if tag, err := tx.Exec(context.Background(), s, a...); err != nil {
				return err
			} else if s == sql && tag.RowsAffected() == 0 {
				t.Fatalf("tamper %q: changed nothing", sql)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	int64p := func(n int64) *int64 { return &n }
	cases := []struct {
		name   string
		tamper string // run with $1 = workspace a; "" for none
		want   audit.VerifyResult
	}{
		{"untouched", "", audit.VerifyResult{OK: true, Entries: 6}},
		{"actor e-mail changed", `UPDATE audit_entries SET actor_email = 'mallory@example.test' WHERE workspace_id = $1 AND seq = 3`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(3)}},
		{"details changed", `UPDATE audit_entries SET details = '{"fromRole":"Editor","toRole":"Monitor"}' WHERE workspace_id = $1 AND seq = 5`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(5)}},
		{"NULL made empty", `UPDATE audit_entries SET causation_id = '' WHERE workspace_id = $1 AND seq = 1`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(1)}},
		{"time changed", `UPDATE audit_entries SET occurred_at = occurred_at + interval '1 microsecond' WHERE workspace_id = $1 AND seq = 6`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(6)}},
		{"hash rewritten", `UPDATE audit_entries SET hash = repeat('0', 64) WHERE workspace_id = $1 AND seq = 2`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(2)}},
		{"middle entry deleted", `DELETE FROM audit_entries WHERE workspace_id = $1 AND seq = 3`,
			audit.VerifyResult{Entries: 5, FirstBrokenSeq: int64p(4)}},
		{"first entry deleted", `DELETE FROM audit_entries WHERE workspace_id = $1 AND seq = 1`,
			audit.VerifyResult{Entries: 5, FirstBrokenSeq: int64p(2)}},
		// A shorter chain still checks out: see Verify's doc.
		{"last entries deleted", `DELETE FROM audit_entries WHERE workspace_id = $1 AND seq >= 5`,
			audit.VerifyResult{OK: true, Entries: 4}},
		{"entries renumbered", `UPDATE audit_entries SET seq = seq + 10 WHERE workspace_id = $1 AND seq >= 4`,
			audit.VerifyResult{Entries: 6, FirstBrokenSeq: int64p(14)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pool, a, b, _ := appliedScenario(t)
			if c.tamper != "" {
				tamper(t, pool, c.tamper, a)
			}
			got := verify(t, pool, a)
			if got.OK != c.want.OK || got.Entries != c.want.Entries || !reflect.DeepEqual(got.FirstBrokenSeq, c.want.FirstBrokenSeq) {
				t.Errorf("Verify: got ok=%v entries=%d broken=%v, want ok=%v entries=%d broken=%v",
					got.OK, got.Entries, seqOrNil(got.FirstBrokenSeq), c.want.OK, c.want.Entries, seqOrNil(c.want.FirstBrokenSeq))
			}
			wantIntact(t, pool, b, 2, "of the untouched workspace")
		})
	}
}

func TestVerifyUnknownWorkspace(t *testing.T) {
	pool, _ := fresh(t)
	got := verify(t, pool, uuid.New())
	if !got.OK || got.Entries != 0 || got.FirstBrokenSeq != nil {
		t.Errorf("Verify of a workspace without entries: got %+v, want ok with 0 entries", got)
	}
}

// TestCreateTablesInFreshSchema does what a rebuild does: create the tables
// in a fresh schema, fill them, swap them into public and drop the old
// ones. The triggers are there from the start and move along.
func TestCreateTablesInFreshSchema(t *testing.T) {
	pool, h := fresh(t)
	ctx := context.Background()
	a, _, events := scenario(h)
	apply(t, pool, events[:2]) // the live tables hold something else
	createSchema(t, pool, "rebuild_1")

	var tables []string
	rows, _ := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'rebuild_1' ORDER BY tablename`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"audit_entries", "audit_user_emails"}; !reflect.DeepEqual(tables, want) {
		t.Errorf("tables in the fresh schema: got %q, want %q", tables, want)
	}
	checkTriggers(t, pool, "rebuild_1")

	applyIn(t, pool, "rebuild_1", events)
	checkRefusals(t, pool, "rebuild_1", a)

	// The swap.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{
			`DROP TABLE public.audit_entries, public.audit_user_emails`,
			`ALTER TABLE rebuild_1.audit_entries SET SCHEMA public`,
			`ALTER TABLE rebuild_1.audit_user_emails SET SCHEMA public`,
			`DROP SCHEMA rebuild_1`,
		} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("swap the rebuilt tables in: %v", err)
	}
	checkTriggers(t, pool, "public")
	checkRefusals(t, pool, "public", a)
	wantIntact(t, pool, a, 6, "after the swap")
	var h2 history
	h2.pos = h.pos
	apply(t, pool, logins(&h2, a, newPerson("z@example.test"), 2))
	wantIntact(t, pool, a, 8, "after applying to the swapped tables")
}

func createSchema(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	pgtest.CreateTables(t, pool, schema, audit.New().Schema())
}

// checkTriggers: the append-only triggers exist on schema's audit_entries,
// enabled ALWAYS.
func checkTriggers(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	rows, _ := pool.Query(context.Background(), `
		SELECT tg.tgname || ':' || tg.tgenabled::text
		FROM pg_trigger tg
		JOIN pg_class c ON c.oid = tg.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'audit_entries' AND NOT tg.tgisinternal
		ORDER BY 1`, schema)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"audit_entries_no_truncate:A", "audit_entries_no_update_delete:A"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("triggers on %s.audit_entries (name:enabled): got %q, want %q", schema, got, want)
	}
}
