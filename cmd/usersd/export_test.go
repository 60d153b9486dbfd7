package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	for i := range 5 {
		e := domain.UserLoggedIn{WorkspaceID: uuid.New(), UserID: uuid.New(), LoggedInAt: base.Add(time.Duration(i) * time.Hour)}
		d, err := codec.EncodeOne(ctx, e, domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: e.LoggedInAt})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, "logins-x", eventstore.Any{}, d); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	progressed := 0
	n, err := exportEvents(ctx, store, &out, window{from: base.Add(time.Hour), to: base.Add(4 * time.Hour)}, func(k int) { progressed += k })
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if n != 3 || len(lines) != 3 {
		t.Fatalf("exported %d events in %d lines, want 3 (hours 1, 2, 3)", n, len(lines))
	}
	if progressed != 5 {
		t.Errorf("progress counted %d events, want all 5 read", progressed)
	}
	var first exportedEvent
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Type != "UserLoggedIn" || first.StreamID != "logins-x" || first.Revision != 1 || !first.OccurredAt.Equal(base.Add(time.Hour)) {
		t.Errorf("first line = %+v, want the UserLoggedIn at revision 1, one hour in", first)
	}
	if !json.Valid(first.Data) || !bytes.Contains(first.Data, []byte(`"loggedInAt"`)) {
		t.Errorf("data = %s, want the stored event JSON", first.Data)
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
	if n, err := exportEvents(ctx, store, &out, window{}, func(int) {}); err != nil || n != 1 {
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
