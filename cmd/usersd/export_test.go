package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/domain"
)

func TestExportEventsWritesEveryEventInWindowAsNDJSON(t *testing.T) {
	t.Parallel()
	store := memory.New()
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		e := domain.UserLoggedIn{WorkspaceID: uuid.New(), UserID: uuid.New(), LoggedInAt: base.Add(time.Duration(i) * time.Hour)}
		d, err := eventstore.Encode(e, domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: e.LoggedInAt})
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
