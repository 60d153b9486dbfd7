package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

const waitTimeout = 30 * time.Second

// connectCluster starts a cluster and connects the official client to it
// through gossip.
func connectCluster(t *testing.T) (*esdbtest.Cluster, *esdbclient.Client) {
	t.Helper()
	cl := esdbtest.StartCluster(t)
	return cl, client(t, cl.URL())
}

// client connects the official client to a connection string.
func client(t *testing.T, url string) *esdbclient.Client {
	t.Helper()
	return esdbtest.Client(t, url)
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// leaderOnly marks a call as one a follower must not serve, as the
// requires-leader header of a real client does.
func leaderOnly(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "requires-leader", "true")
}

func event(eventType string) esdbclient.EventData {
	return esdbclient.EventData{EventID: uuid.New(), EventType: eventType, ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`)}
}

func events(n int) []esdbclient.EventData {
	out := make([]esdbclient.EventData, n)
	for i := range out {
		out[i] = event("Happened")
	}
	return out
}

// codeOf is the client's error code of err, or -1 for no error.
func codeOf(err error) esdbclient.ErrorCode {
	if err == nil {
		return -1
	}
	var e *esdbclient.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return esdbclient.ErrorCodeUnknown
}

// wantStatus checks the gRPC status under err.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	// A status under the client's error comes back with the whole text.
	if !ok || st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("%s: got %v, want status %v %q", what, err, code, msg)
	}
}

// reconnected waits until the client reaches a server that restarted: its
// first call after the restart may fail with Unavailable (the connection
// broke), after which the client connects again.
func reconnected(t *testing.T, c *esdbclient.Client) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := readStream(timeout(t), c, "$users")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no server after the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustAppend appends and fails the test on error.
func mustAppend(t *testing.T, c *esdbclient.Client, stream string, expected esdbclient.ExpectedRevision, evs ...esdbclient.EventData) *esdbclient.WriteResult {
	t.Helper()
	wr, err := c.AppendToStream(timeout(t), stream, esdbclient.AppendToStreamOptions{ExpectedRevision: expected}, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return wr
}

// readStream returns a stream's events, or the error of the read.
func readStream(ctx context.Context, c *esdbclient.Client, stream string) ([]*esdbclient.RecordedEvent, error) {
	rs, err := c.ReadStream(ctx, stream, esdbclient.ReadStreamOptions{From: esdbclient.Start{}}, 1000)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdbclient.RecordedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e.Event)
	}
}

// readAllEvents returns every event of $all, system records included.
func readAllEvents(t *testing.T, c *esdbclient.Client) []*esdbclient.RecordedEvent {
	t.Helper()
	return readAllWith(t, c, esdbclient.ReadAllOptions{From: esdbclient.Start{}}, 100_000)
}

// readAllWith returns the events a read of $all with opts answers, system
// records included.
func readAllWith(t *testing.T, c *esdbclient.Client, opts esdbclient.ReadAllOptions, count uint64) []*esdbclient.RecordedEvent {
	t.Helper()
	rs, err := c.ReadAll(timeout(t), opts, count)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []*esdbclient.RecordedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read $all: %v", err)
		}
		out = append(out, e.Event)
	}
}

func idsOf(evs []*esdbclient.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

// message is one subscription message, simplified for comparisons.
type message struct {
	kind string // "event", "checkpoint", "caught-up", "fell-behind", "dropped"
	pos  esdbclient.Position
	id   uuid.UUID
	err  error
}

// recvUntil receives subscription messages until stop says so or the
// subscription drops.
func recvUntil(t *testing.T, sub *esdbclient.Subscription, stop func([]message) bool) []message {
	t.Helper()
	var got []message
	for !stop(got) {
		m := sub.Recv()
		switch {
		case m.SubscriptionDropped != nil:
			return append(got, message{kind: "dropped", err: m.SubscriptionDropped.Error})
		case m.EventAppeared != nil:
			e := m.EventAppeared.Event
			got = append(got, message{kind: "event", pos: e.Position, id: e.EventID})
		case m.CheckPointReached != nil:
			got = append(got, message{kind: "checkpoint", pos: *m.CheckPointReached})
		case m.CaughtUp != nil:
			got = append(got, message{kind: "caught-up"})
		case m.FellBehind != nil:
			got = append(got, message{kind: "fell-behind"})
		}
	}
	return got
}

// eventsCame stops recvUntil once n events have come.
func eventsCame(n int) func([]message) bool {
	return func(ms []message) bool { return len(ofKind(ms, "event")) == n }
}

// wantOnlyEvent receives until an event comes and fails the test unless it
// is id's, the only one; what says what the subscription is.
func wantOnlyEvent(t *testing.T, sub *esdbclient.Subscription, id uuid.UUID, what string) {
	t.Helper()
	got := recvUntil(t, sub, eventsCame(1))
	if evs := ofKind(got, "event"); len(evs) != 1 || evs[0].id != id {
		t.Errorf("%s: got %v, want only the event %s", what, got, id)
	}
}

func caughtUps(n int) func([]message) bool {
	return func(ms []message) bool {
		c := 0
		for _, m := range ms {
			if m.kind == "caught-up" {
				c++
			}
		}
		return c >= n
	}
}

func ofKind(ms []message, kind string) []message {
	var out []message
	for _, m := range ms {
		if m.kind == kind {
			out = append(out, m)
		}
	}
	return out
}
