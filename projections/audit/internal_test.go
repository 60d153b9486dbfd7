package audit

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// TestEveryAppliedEventIsDescribed: describe has a case for every event
// type the projection declares it applies, so none stops the projection.
func TestEveryAppliedEventIsDescribed(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		_, ok := describeEvent(e)
		return ok
	})
	if len(missing) > 0 {
		t.Errorf("describe has no case for %v, which the audit projection applies", missing)
	}
}

// TestCopyMatchesTheTable pins the hand-written binary COPY (copy.go) to
// audit_entries: columnNames are the table's columns in the table's order,
// and a row with every column set to a value no other column holds, and one
// with every nullable column NULL, come back from the table as they were
// sent. A column added, moved or retyped on one side only fails here.
func TestCopyMatchesTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	rows, _ := pool.Query(ctx, `SELECT attname FROM pg_catalog.pg_attribute
		WHERE attrelid = 'public.audit_entries'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	table, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(columnNames, table) {
		t.Fatalf("columns COPY sends: got %q, want the table's %q", columnNames, table)
	}

	at := time.Date(2031, 2, 3, 4, 5, 6, 789000, time.UTC)
	id := func(n byte) pgtype.UUID { return pgtype.UUID{Bytes: uuid.UUID{n, 0xa}, Valid: true} }
	text := func(s string) pgtype.Text { return pgtype.Text{String: s, Valid: true} }
	full := row{
		workspaceID: id(1), seq: 2, eventID: id(3), occurredAt: at, actorID: id(4),
		actorEmail: text("actor@example.test"), actorSystem: true, action: "RoleChanged",
		targetID: id(5), targetEmail: text("target@example.test"), details: []byte(`"details"`),
		correlationID: text("correlation"), causationID: text("causation"), requestIP: text("203.0.113.7"),
		requestUserAgent: text("agent"), commitPosition: 6, preparePosition: 7, prevHash: "prev", hash: "hash",
	}
	nulls := row{
		workspaceID: id(8), seq: 9, eventID: id(10), occurredAt: at.Add(time.Second), action: "UserLoggedIn",
		details: []byte(`{}`), commitPosition: 11, preparePosition: 12, hash: "hash2",
	}
	sent := []row{full, nulls}
	var got []row
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		i := 0
		next := func() *row {
			if i == len(sent) {
				return nil
			}
			i++
			return &sent[i-1]
		}
		if _, err := tx.Conn().PgConn().CopyFrom(ctx, &copyStream{next: next}, copyEntries); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM audit_entries ORDER BY seq`)
		if err != nil {
			return err
		}
		var r row
		_, err = pgx.ForEachRow(rows, r.scanTargets(), func() error {
			r.occurredAt = r.occurredAt.UTC()
			got = append(got, r)
			r = row{}
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatalf("COPY and read back: %v", err)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Fatalf("rows read back:\n got  %+v\n want %+v", got, sent)
	}
}

// TestPersonalDetailsAreTheEventsPersonalValues: the details display opens
// (personalDetails) are exactly those that copy a personal value of the
// event, for every event type, and that value is the target's. A personal
// field added to an event and copied into details without a line there
// would be shown sealed.
func TestPersonalDetailsAreTheEventsPersonalValues(t *testing.T) {
	t.Parallel()
	target := uuid.New()
	data := []byte(`{"userId":"` + target.String() + `","ownerUserId":"` + target.String() + `"}`)
	for _, name := range domain.EventTypeNames() {
		ev, err := domain.DecodeEvent(name, domain.SchemaVersion, data)
		if err != nil {
			t.Fatalf("DecodeEvent(%s): %v", name, err)
		}
		ev, err = domain.MapPersonal(ev, func(v domain.PersonalValue) (string, error) {
			if v.Subject != target {
				t.Errorf("%s.%s: personal for %s, not the entry's target", name, v.Field, v.Subject)
			}
			return "personal:" + v.Field, nil
		})
		if err != nil {
			t.Fatalf("MapPersonal(%s): %v", name, err)
		}
		d, ok := describeEvent(ev)
		if !ok {
			continue
		}
		var got []string
		for _, f := range d.details {
			if f.kind == kindString && len(f.s) > len("personal:") && f.s[:len("personal:")] == "personal:" {
				got = append(got, f.key)
			}
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(personalDetails[name]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: details holding personal values: got %v, personalDetails says %v", name, got, want)
		}
		if d.targetEmail != "" && d.targetID != target {
			t.Errorf("%s: target address of %s, want the target %s", name, d.targetID, target)
		}
	}
}
