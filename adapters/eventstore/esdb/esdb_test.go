package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testnet"
)

const waitTimeout = 30 * time.Second

// waitCtx is a context that ends waitTimeout from now, or with the test.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newEvent makes an event as usersd writes them: its metadata carries its
// id (see eventstore.IsOurRecord).
func newEvent(n int) eventstore.EventData {
	id := uuid.New()
	return eventstore.EventData{
		ID:       id,
		Type:     "Happened",
		Data:     fmt.Appendf(nil, `{"n": %d}`, n),
		Metadata: fmt.Appendf(nil, `{"eventId": %q, "actor": "tester"}`, id),
	}
}

// openDefault makes a store with the production filter (our stream
// prefixes) and quick resubscription.
func openDefault(t *testing.T, srv *esdbtest.Server, opts ...esdb.Option) *esdb.Store {
	t.Helper()
	return openOn(t, srv.URL(), opts...)
}

// startDefault starts a test server and opens a store on it (openDefault).
func startDefault(t *testing.T, opts ...esdb.Option) (*esdbtest.Server, *esdb.Store) {
	t.Helper()
	srv := esdbtest.Start(t)
	return srv, openDefault(t, srv, opts...)
}

// TestSubscriptionDroppedMidwayResumes drops the server's subscriptions
// several times, during the catch-up and while live: the handler must still
// see every event once, in order.
func TestSubscriptionDroppedMidwayResumes(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	ctx := waitCtx(t)

	const before, after = 300, 60
	var want []uuid.UUID
	appendN := func(from, n int) {
		for i := from; i < from+n; i += 3 {
			stream := eventstore.WorkspaceStream(uuid.New())
			evs := []eventstore.EventData{newEvent(i), newEvent(i + 1), newEvent(i + 2)}
			if _, err := s.Append(ctx, stream, eventstore.NoStream{}, evs...); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			for _, e := range evs {
				want = append(want, e.ID)
			}
		}
	}
	appendN(0, before)

	var (
		got                     []uuid.UUID
		once                    eventstoretest.Once
		writing                 bool
		done                    = errors.New("all seen")
		writer                  sync.WaitGroup
		catchUpDrops, liveDrops int
		dropped                 int // subscriptions made when the last drop came
	)
	// dropLive drops the server's subscription if it is one that has not
	// been dropped yet: events received before a drop are still handed
	// over after it, while no subscription runs.
	dropLive := func(drops *int) {
		if n := srv.Subscriptions(); n > dropped {
			srv.DropSubscriptions()
			dropped = n
			*drops++
		}
	}
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 10}, func(_ context.Context, b eventstore.Batch) error {
		for _, e := range b.Events {
			if err := once.Add(e); err != nil {
				return err
			}
			got = append(got, e.ID)
		}
		switch {
		case len(got) < before && catchUpDrops < 3:
			// Mid-way through the catch-up. How many land depends on how
			// fast the resubscription comes back while buffered events
			// are handed over, so up to three.
			dropLive(&catchUpDrops)
		case len(got) == before && b.CaughtUp && !writing:
			writing = true
			writer.Go(func() { appendN(before, after) })
		case len(got) >= before+after/2 && liveDrops == 0:
			dropLive(&liveDrops) // while live, with appends going on
		}
		if len(got) == before+after {
			return done
		}
		return nil
	})
	writer.Wait()
	if !errors.Is(err, done) {
		t.Fatalf("SubscribeToAll: got %v after %d of %d events, want all of them", err, len(got), before+after)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: got %s, want %s: the order of the appends", i, got[i], want[i])
		}
	}
	if catchUpDrops < 1 || liveDrops != 1 {
		t.Errorf("drops: got %d during the catch-up and %d live, want at least 1 and exactly 1", catchUpDrops, liveDrops)
	}
	// The first and one per drop; the last drop's may not have come yet
	// when the events buffered before it completed the set.
	if n, drops := srv.Subscriptions(), catchUpDrops+liveDrops; n < drops || n > drops+1 {
		t.Errorf("subscriptions made: got %d, want %d or %d (the first and one per drop)", n, drops, drops+1)
	}
}

// TestWrongExpectedVersion: the server's refusal is the domain's
// concurrency error, for every kind of expectation, and stores nothing.
func TestWrongExpectedVersion(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	if _, err := s.Append(ctx, stream, eventstore.NoStream{}, newEvent(0), newEvent(1)); err != nil {
		t.Fatalf("first append: %v", err)
	}
	for _, expected := range []eventstore.ExpectedRevision{eventstore.NoStream{}, eventstore.Revision(0), eventstore.Revision(2)} {
		_, err := s.Append(ctx, stream, expected, newEvent(9))
		if !errors.Is(err, eventstore.ErrWrongExpectedRevision) || !errors.Is(err, domain.ErrConcurrency) {
			t.Errorf("append expecting %v at revision 1: got %v, want ErrWrongExpectedRevision and domain.ErrConcurrency", expected, err)
		}
	}
	_, err := s.Append(ctx, eventstore.WorkspaceStream(uuid.New()), eventstore.StreamExists{}, newEvent(0))
	if !errors.Is(err, domain.ErrConcurrency) {
		t.Errorf("append expecting an existing stream to a new one: got %v, want domain.ErrConcurrency", err)
	}
	if got, want := srv.Len(), 2; got != want {
		t.Errorf("events stored: got %d, want %d", got, want)
	}
}

// TestAppendRetriedAfterLostReply: the server stores an append and its reply
// is lost; the adapter sends it again with the same ids, and the server
// keeps one copy and answers the original result.
func TestAppendRetriedAfterLostReply(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())

	for i, expected := range []eventstore.ExpectedRevision{eventstore.NoStream{}, eventstore.Revision(1), eventstore.Any{}} {
		srv.FailAppendsAfterStoring(1)
		evs := []eventstore.EventData{newEvent(2 * i), newEvent(2*i + 1)}
		r, err := s.Append(ctx, stream, expected, evs...)
		if err != nil {
			t.Fatalf("append %d expecting %v with its reply lost: got %v, want it retried and answered", i, expected, err)
		}
		stored, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if got, want := len(stored), 2*(i+1); got != want {
			t.Fatalf("after append %d: got %d events, want %d: each stored once", i, got, want)
		}
		lastEv := stored[len(stored)-1]
		if lastEv.ID != evs[1].ID || r.NextExpectedRevision != lastEv.Revision || r.Position != lastEv.Position {
			t.Errorf("append %d: got result %+v, want revision %d and position %v of its last event %s (got %s)",
				i, r, lastEv.Revision, lastEv.Position, evs[1].ID, lastEv.ID)
		}
	}

	// Without retries the caller learns that the outcome is unknown.
	noRetry := openDefault(t, srv, esdb.WithAppendRetries(0))
	srv.FailAppendsAfterStoring(1)
	if _, err := noRetry.Append(ctx, stream, eventstore.Revision(5), newEvent(9)); err == nil {
		t.Errorf("append with its reply lost and no retries: got no error, want the client's")
	}
}

// TestSubscriptionFiltersOtherStreams: only our prefixes reach the handler;
// system and foreign streams are filtered by the server, and the batch
// checkpoint stays at our last event (a server's checkpoint past it is not
// kept: see TestCheckpointsOnlyOfDeliveredEvents).
func TestSubscriptionFiltersOtherStreams(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	raw := esdbtest.Client(t, srv.URL())
	ctx := waitCtx(t)

	var want []uuid.UUID
	ours := []string{
		eventstore.WorkspaceStream(uuid.New()),
		testCodec.AccountStream(domain.Email("a@example.com")),
		eventstore.LoginsStream(uuid.New()),
	}
	for i, stream := range ours {
		e := newEvent(i)
		if _, err := s.Append(ctx, stream, eventstore.Any{}, e); err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
		want = append(want, e.ID)
		for _, foreign := range []string{"$stats-127.0.0.1", "other-" + stream, "$$" + stream} {
			_, err := raw.AppendToStream(ctx, foreign, esdbclient.AppendToStreamOptions{},
				esdbclient.EventData{EventType: "$metadata", ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`)})
			if err != nil {
				t.Fatalf("append to %s: %v", foreign, err)
			}
		}
	}

	got, final := caughtUpBatch(t, s, 0)
	if len(got) != len(want) {
		t.Fatalf("got %d events, want only ours: %d", len(got), len(want))
	}
	for i, e := range got {
		if e.ID != want[i] || e.StreamID != ours[i] {
			t.Errorf("event %d: got %s in %s, want %s in %s", i, e.ID, e.StreamID, want[i], ours[i])
		}
	}
	if want := got[len(got)-1].Position; final.Checkpoint != want {
		t.Errorf("checkpoint at caught-up: got %v, want our last event's %v", final.Checkpoint, want)
	}
}

// TestNamespaceIsolatesStores: two stores on one server, each behind its
// own namespace, read and follow only their own streams.
func TestNamespaceIsolatesStores(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	a := openDefault(t, srv, esdb.WithNamespace("a-"))
	b := openDefault(t, srv, esdb.WithNamespace("b-"))
	ctx := waitCtx(t)
	stream := eventstore.WorkspaceStream(uuid.New())
	ea, eb := newEvent(1), newEvent(2)
	if _, err := a.Append(ctx, stream, eventstore.NoStream{}, ea); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, stream, eventstore.NoStream{}, eb); err != nil {
		t.Fatalf("same stream name in another namespace: got %v, want a stream of its own", err)
	}
	got := untilCaughtUp(t, b, 0)
	if len(got) != 1 || got[0].ID != eb.ID || got[0].StreamID != stream {
		t.Errorf("namespace b: got %+v, want only its event %s in %s", got, eb.ID, stream)
	}
}

// TestCancelledSubscriptionsLeaveNoGoroutines starts and cancels
// subscriptions, live and dropped ones, and waits for the goroutine count
// to come back. It does not call t.Parallel: the count is process-wide,
// and parallel tests only start once the sequential ones are done.
func TestCancelledSubscriptionsLeaveNoGoroutines(t *testing.T) {
	srv, s := startDefault(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, eventstore.WorkspaceStream(uuid.New()), eventstore.NoStream{}, newEvent(0)); err != nil {
		t.Fatal(err)
	}
	runOne := func(drop bool) {
		subCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		caughtUp := make(chan struct{}, 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = s.SubscribeToAll(subCtx, domain.Position{}, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error {
				select {
				case caughtUp <- struct{}{}:
				default:
				}
				return nil
			})
		})
		<-caughtUp
		if drop {
			srv.DropSubscriptions()
			<-caughtUp // resubscribed
		}
		cancel()
		wg.Wait()
	}
	runOne(false) // the connection's own goroutines start here
	base := runtime.NumGoroutine()
	for i := range 20 {
		runOne(i%2 == 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > base {
		t.Errorf("goroutines after 20 cancelled subscriptions: got %d, want at most %d as before", got, base)
	}
}

func TestOpenRefusesBadConnectionString(t *testing.T) {
	t.Parallel()
	if _, err := esdb.Open("http://nowhere"); err == nil {
		t.Errorf("Open(http://nowhere): got no error, want the connection string refused")
	}
}

// TestReconnectsAfterClusterWasDown: while no node answers, the client's
// discovery gives up and the client closes for good; the store makes a new
// one, so usersd carries on once a node is back.
func TestReconnectsAfterClusterWasDown(t *testing.T) {
	t.Parallel()
	addr := testnet.FreeAddr(t)
	s, err := esdb.Open("esdb://" + addr + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=10")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	// The append retries on new clients until its deadline.
	down, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := s.Append(down, stream, eventstore.NoStream{}, newEvent(0)); err == nil {
		t.Fatalf("append with no server: got no error, want one")
	}

	srv := esdbtest.StartOn(t, addr)
	e := newEvent(1)
	if _, err := s.Append(ctx, stream, eventstore.NoStream{}, e); err != nil {
		t.Fatalf("append once the server is back: got %v, want it stored", err)
	}
	got, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{})
	if err != nil || len(got) != 1 || got[0].ID != e.ID {
		t.Fatalf("read once the server is back: got %+v, %v, want the one event", got, err)
	}
	if srv.Len() != 1 {
		t.Errorf("events on the server: got %d, want 1", srv.Len())
	}
}

// TestClusterConnectionStrings: the discovery and gossip-seed forms of
// docs/esdb.md reach the node that gossip names as leader.
func TestClusterConnectionStrings(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	for _, url := range []string{
		"esdb+discover://" + srv.Addr() + "?tls=false",
		"esdb://" + srv.Addr() + "," + srv.Addr() + "?tls=false&nodePreference=leader",
	} {
		s, err := esdb.Open(url)
		if err != nil {
			t.Fatalf("Open(%s): %v", url, err)
		}
		defer s.Close()
		stream := eventstore.WorkspaceStream(uuid.New())
		if _, err := s.Append(context.Background(), stream, eventstore.NoStream{}, newEvent(0)); err != nil {
			t.Errorf("append through %s: %v", url, err)
		}
	}
	if got, want := srv.Len(), 2; got != want {
		t.Errorf("events on the server: got %d, want %d", got, want)
	}
}

// TestAppendFollowsLeaderChange: the node usersd is connected to has become
// a follower; it refuses the append naming the new leader, the client
// reconnects there, and the adapter's retry stores the append there once.
func TestAppendFollowsLeaderChange(t *testing.T) {
	t.Parallel()
	follower, leader := esdbtest.Start(t), esdbtest.Start(t)
	s := openDefault(t, follower)
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	if _, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("read before the election: got %v, want ErrStreamNotFound", err)
	}

	follower.FollowLeader(leader.Addr())
	for i := range 2 {
		if _, err := s.Append(ctx, stream, eventstore.Any{}, newEvent(i)); err != nil {
			t.Fatalf("append %d after the election: got %v, want it stored on the new leader", i, err)
		}
	}
	if got, want := leader.Len(), 2; got != want {
		t.Errorf("events on the new leader: got %d, want %d", got, want)
	}
	if got := follower.Len(); got != 0 {
		t.Errorf("events on the old one: got %d, want none", got)
	}
}
