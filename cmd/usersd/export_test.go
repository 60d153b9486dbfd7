package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

func TestExportEventsWritesEveryEventInWindowAsNDJSON(t *testing.T) {
	t.Parallel()
	store := memory.New()
	ctx := context.Background()
	codec := eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("export test stream-name key....."))
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ws := uuid.New()
	for i := range 5 {
		var e domain.Event = domain.UserLoggedIn{WorkspaceID: ws, UserID: uuid.New(), LoggedInAt: base.Add(time.Duration(i) * time.Hour)}
		if i == 2 {
			e = domain.MemberSuspended{WorkspaceID: ws, UserID: uuid.New(), Role: "Editor"}
		}
		d, err := codec.EncodeOne(ctx, e, domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, "logins-x", eventstore.Any{}, d); err != nil {
			t.Fatal(err)
		}
	}
	export := func(q exportQuery) ([]feedLine, int) {
		t.Helper()
		var out bytes.Buffer
		progressed := 0
		n, err := exportEvents(ctx, store, &out, q, func(k int) { progressed += k })
		if err != nil {
			t.Fatal(err)
		}
		var lines []feedLine
		for raw := range bytes.Lines(out.Bytes()) {
			var l feedLine
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatalf("line %q: %v", raw, err)
			}
			lines = append(lines, l)
		}
		if n != len(lines) {
			t.Errorf("exportEvents says %d events, wrote %d lines", n, len(lines))
		}
		return lines, progressed
	}

	all, progressed := export(exportQuery{})
	if len(all) != 5 || progressed != 5 {
		t.Fatalf("exported %d events, read %d; want all 5", len(all), progressed)
	}
	lines, progressed := export(exportQuery{window: window{from: base.Add(time.Hour), to: base.Add(4 * time.Hour)}})
	if len(lines) != 3 || lines[0].Position != all[1].Position {
		t.Fatalf("exported %d events from %v, want 3 (hours 1, 2, 3)", len(lines), lines)
	}
	if progressed != 5 {
		t.Errorf("progress counted %d events, want all 5 read", progressed)
	}
	first := lines[0]
	if first.Type != "UserLoggedIn" || first.WorkspaceID != ws.String() || !first.OccurredAt.Equal(base.Add(time.Hour)) || first.EventID == "" {
		t.Errorf("first line = %+v, want the UserLoggedIn one hour in", first)
	}
	if !bytes.Contains(first.Data, []byte(`"loggedInAt"`)) || !bytes.Contains(first.Metadata, []byte(`"schemaVersion":1`)) {
		t.Errorf("data %s, metadata %s: want the event's fields and its metadata", first.Data, first.Metadata)
	}

	after, _ := domain.ParsePosition(all[1].Position)
	if lines, _ := export(exportQuery{after: after}); len(lines) != 3 || lines[0].Position != all[2].Position {
		t.Errorf("-after the second: %v, want the last 3", lines)
	}
	if lines, _ := export(exportQuery{types: []string{"MemberSuspended"}}); len(lines) != 1 || lines[0].Type != "MemberSuspended" {
		t.Errorf("-types MemberSuspended: %v, want the one", lines)
	}
}

// feedLine is a line of the export: the event feed's.
type feedLine struct {
	Position, EventID, Type, WorkspaceID string
	OccurredAt                           time.Time
	Data, Metadata                       json.RawMessage
}

func TestParseExportQuery(t *testing.T) {
	t.Parallel()
	q, err := parseExportQuery("", "", "12-3", " UserInvited,RoleChanged")
	if err != nil || q.after != (domain.Position{Commit: 12, Prepare: 3}) || strings.Join(q.types, ",") != "UserInvited,RoleChanged" {
		t.Errorf("parseExportQuery = %+v, %v", q, err)
	}
	for _, c := range [][4]string{{"", "", "12", ""}, {"", "", "012-3", ""}, {"", "", "", "UserInvited,Nope"}, {"yesterday", "", "", ""}} {
		_, err := parseExportQuery(c[0], c[1], c[2], c[3])
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseExportQuery(%q) = %v, want a usage error", c, err)
		}
	}
}

// TestExportEventsWritesSealedValues: the export is of the events as stored,
// so an analytics copy holds no address or name, and an erasure reaches it
// too.
func TestExportEventsWritesSealedValues(t *testing.T) {
	t.Parallel()
	store := memory.New()
	ctx := context.Background()
	codec := eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("export test stream-name key....."))
	owner := uuid.New()
	e := domain.WorkspaceCreated{WorkspaceID: uuid.New(), Name: "Acme", OwnerUserID: owner, OwnerEmail: "grace.hopper@example.com", OwnerName: "Grace Hopper", CreatedAt: time.Now()}
	d, err := codec.EncodeOne(ctx, e, domain.Metadata{EventID: uuid.New(), OccurredAt: e.CreatedAt,
		Actor: domain.Actor{UserID: owner, Email: "grace.hopper@example.com"}, Request: &domain.RequestContext{IP: "198.51.100.9"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, eventstore.WorkspaceStream(e.WorkspaceID), eventstore.NoStream{}, d); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n, err := exportEvents(ctx, store, &out, exportQuery{}, func(int) {}); err != nil || n != 1 {
		t.Fatalf("exported %d events, %v", n, err)
	}
	got := strings.ToLower(out.String())
	for _, plain := range []string{"grace", "hopper", "198.51.100.9"} {
		if strings.Contains(got, plain) {
			t.Errorf("the export holds %q: %s", plain, got)
		}
	}
	if !strings.Contains(got, pii.Prefix) || !strings.Contains(got, "acme") {
		t.Errorf("want the sealed values and the rest as stored, got %s", got)
	}
}

func TestParseWindowRefusesBadTimes(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]string{{"yesterday", ""}, {"", "2026-13-01"}, {"2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"}} {
		if _, err := parseWindow(c[0], c[1]); err == nil {
			t.Errorf("parseWindow(%q, %q) succeeded, want a usage error", c[0], c[1])
		}
	}
	if _, err := parseWindow("2026-01-01T00:00:00Z", ""); err != nil {
		t.Errorf("parseWindow(valid) = %v", err)
	}
}

// testCodec is the codec serve would use on pool's database.
func testCodec(t testing.TB, pool *pgxpool.Pool) *eventstore.Codec {
	t.Helper()
	e := &env{Log: discardLogger(), Getenv: func(k string) string {
		if k == envKeyEncryptionKey {
			return testKEK
		}
		return ""
	}}
	c, err := codecFor(context.Background(), e, database{}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEventsSealRefusesEventStoreDB(t *testing.T) {
	t.Parallel()
	got := runUsersd(t, map[string]string{"ESDB_URL": "esdb://127.0.0.1:1?tls=false"}, "events", "seal")
	if got.code != exitUsage || !strings.Contains(got.stderr, "PostgreSQL event store only") {
		t.Errorf("events seal with ESDB_URL: exit %d, stderr %q; want a usage error naming the PostgreSQL store", got.code, got.stderr)
	}
}
