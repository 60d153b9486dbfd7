package esdbtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// The adapter needs only part of the server; these tests hold the rest of
// it to what the official client expects, through that client.

func connect(t *testing.T) (*esdbtest.Server, *esdbclient.Client) {
	t.Helper()
	srv := esdbtest.Start(t)
	return srv, esdbtest.Client(t, srv.URL())
}

func appendTo(t *testing.T, c *esdbclient.Client, stream, eventType string) (uuid.UUID, esdbclient.Position) {
	t.Helper()
	id := uuid.New()
	wr, err := c.AppendToStream(context.Background(), stream, esdbclient.AppendToStreamOptions{},
		esdbclient.EventData{EventID: id, EventType: eventType, ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`)})
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return id, esdbclient.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition}
}

// readAll reads $all and returns the ids of the events of user streams:
// the server's own system records are read too, and left out.
func readAll(t *testing.T, c *esdbclient.Client, opts esdbclient.ReadAllOptions, count uint64) []uuid.UUID {
	t.Helper()
	var out []uuid.UUID
	for _, e := range readAllWith(t, c, opts, count) {
		if !strings.HasPrefix(e.StreamID, "$") {
			out = append(out, e.EventID)
		}
	}
	return out
}

func same(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	var ids []uuid.UUID
	var pos []esdbclient.Position
	for i := range 4 {
		id, p := appendTo(t, c, []string{"a", "b"}[i%2], "Happened")
		ids, pos = append(ids, id), append(pos, p)
	}
	cases := []struct {
		name  string
		opts  esdbclient.ReadAllOptions
		count uint64
		want  []uuid.UUID
	}{
		{"forwards from the start", esdbclient.ReadAllOptions{From: esdbclient.Start{}}, 100, ids},
		{"forwards from a position, inclusive", esdbclient.ReadAllOptions{From: pos[1]}, 2, ids[1:3]},
		{"backwards from the end", esdbclient.ReadAllOptions{Direction: esdbclient.Backwards, From: esdbclient.End{}}, 2, []uuid.UUID{ids[3], ids[2]}},
		{"backwards from a position, exclusive", esdbclient.ReadAllOptions{Direction: esdbclient.Backwards, From: pos[2]}, 10, []uuid.UUID{ids[1], ids[0]}},
	}
	for _, tc := range cases {
		if got := readAll(t, c, tc.opts, tc.count); !same(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSubscriptionWithEventTypeFilter: the client's ExcludeSystemEvents
// filter (a regex on event types), confirmation first, caught-up once.
func TestSubscriptionWithEventTypeFilter(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	want, _ := appendTo(t, c, "a", "Happened")
	appendTo(t, c, "a", "$metadata")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := c.SubscribeToAll(ctx, esdbclient.SubscribeToAllOptions{From: esdbclient.Start{}, Filter: esdbclient.ExcludeSystemEventsFilter()})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	var got []uuid.UUID
	checkpoints := 0
	for {
		m := sub.Recv()
		switch {
		case m.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", m.SubscriptionDropped.Error)
		case m.EventAppeared != nil:
			got = append(got, m.EventAppeared.Event.EventID)
		case m.CheckPointReached != nil:
			checkpoints++
		}
		if m.CaughtUp != nil {
			break
		}
	}
	if !same(got, []uuid.UUID{want}) {
		t.Errorf("events: got %v, want only %s (the other is a system event)", got, want)
	}
	if checkpoints != 1 {
		t.Errorf("checkpoints before caught-up: got %d, want 1 for the skipped record", checkpoints)
	}
}
