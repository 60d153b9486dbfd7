package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/domain"
)

// electionTime is how long the scripted elections last: longer than the
// v4 client's default discovery (10 attempts, 100 ms apart), which is what
// once made a client give up with calls queued in it and the store panic
// them by closing it.
const electionTime = 2500 * time.Millisecond

// TestElection runs a leader election under load on a three-node test
// cluster: node 0 leads, then every node is in the election (Unknown, node
// 1 PreLeader: appends answer "Server Is Not Ready" and discovery finds no
// node to connect to) for electionTime, then node 1 leads. Eight writers
// append all along, each call with a deadline, and a live subscription
// (dropped by node 0 when the election starts) follows $all. Nothing may
// panic, every call must be back by its deadline, every write must be
// stored once, and the subscription must resume with every event once, in
// order. It runs once with the store's discovery budget and once with the
// client's old default, which gives up during the election.
func TestElection(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, params string }{
		{"discovery outlasts the election", ""},
		{"discovery gives up during the election", "&maxDiscoverAttempts=10&discoveryInterval=100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runElection(t, c.params)
		})
	}
}

func runElection(t *testing.T, params string) {
	cluster := esdbtest.StartCluster(t)
	s := openOn(t, cluster.URL()+params)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const (
		writers      = 8
		callDeadline = time.Second
		// grace is what a call may take past its deadline to come back: a
		// scheduling delay on a loaded machine, not a wait on the client.
		grace = 5 * time.Second
	)

	// The subscription: every event once, in order.
	var (
		mu        sync.Mutex
		delivered []uuid.UUID
		seen      = map[uuid.UUID]bool{}
		last      domain.Position
		caughtUp  bool
		subErrs   []string
	)
	subDone := make(chan error, 1)
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	go func() {
		subDone <- s.SubscribeToAll(subCtx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 16}, func(_ context.Context, b eventstore.Batch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range b.Events {
				switch {
				case seen[e.ID]:
					subErrs = append(subErrs, fmt.Sprintf("event %s at %v delivered twice", e.ID, e.Position))
				case !last.Less(e.Position):
					subErrs = append(subErrs, fmt.Sprintf("event %s at %v after %v", e.ID, e.Position, last))
				}
				seen[e.ID], last = true, e.Position
				delivered = append(delivered, e.ID)
			}
			caughtUp = caughtUp || b.CaughtUp
			return nil
		})
	}()

	// The writers: each appends to its own stream at exact revisions, and
	// sends a failed append again, same id, until it is stored.
	type writer struct {
		stream string
		stored []uuid.UUID
	}
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		ws    = make([]*writer, writers)
		late  []string
		errMu sync.Mutex
		other []string
	)
	successes := func() []int {
		mu.Lock()
		defer mu.Unlock()
		n := make([]int, writers)
		for i, w := range ws {
			n[i] = len(w.stored)
		}
		return n
	}
	for i := range ws {
		ws[i] = &writer{stream: eventstore.WorkspaceStream(uuid.New())}
		w := ws[i]
		wg.Go(func() {
			e := newEvent(0)
			for {
				var expected eventstore.ExpectedRevision = eventstore.NoStream{}
				mu.Lock()
				if n := len(w.stored); n > 0 {
					expected = eventstore.Revision(n - 1)
				}
				mu.Unlock()
				callCtx, cancel := context.WithTimeout(ctx, callDeadline)
				start := time.Now()
				_, err := s.Append(callCtx, w.stream, expected, e)
				took := time.Since(start)
				cancel()
				errMu.Lock()
				if took > callDeadline+grace {
					late = append(late, fmt.Sprintf("append to %s took %v with a deadline of %v (%v)", w.stream, took, callDeadline, err))
				}
				if errors.Is(err, eventstore.ErrWrongExpectedRevision) {
					other = append(other, fmt.Sprintf("append to %s: %v: a repeat of a stored append must answer its result", w.stream, err))
				}
				errMu.Unlock()
				if err == nil {
					mu.Lock()
					w.stored = append(w.stored, e.ID)
					mu.Unlock()
					e = newEvent(len(w.stored))
					select {
					case <-stop:
						return
					default:
					}
				}
				if ctx.Err() != nil {
					return
				}
			}
		})
	}

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	atLeast := func(base []int, more int) func() bool {
		return func() bool {
			for i, n := range successes() {
				if n < base[i]+more {
					return false
				}
			}
			return true
		}
	}
	waitFor("three appends per writer and a live subscription", func() bool {
		mu.Lock()
		live := caughtUp
		mu.Unlock()
		return live && atLeast(make([]int, writers), 3)()
	})

	cluster.Node(0).DropSubscriptions()
	elected := cluster.Election(1, electionTime)
	select {
	case <-elected:
	case <-ctx.Done():
		t.Fatal("the election never ended")
	}
	waitFor("three more appends per writer after the election", atLeast(successes(), 3))
	close(stop)
	wg.Wait()

	// Every write stored once, in its writer's order.
	total := 0
	for _, w := range ws {
		got, err := s.ReadStream(ctx, w.stream, eventstore.ReadOptions{})
		if err != nil {
			t.Fatalf("read %s: %v", w.stream, err)
		}
		if len(got) != len(w.stored) {
			t.Errorf("%s: got %d events, want the %d appends that succeeded, each once", w.stream, len(got), len(w.stored))
			continue
		}
		for i, e := range got {
			if e.ID != w.stored[i] {
				t.Errorf("%s revision %d: got %s, want %s", w.stream, i, e.ID, w.stored[i])
			}
		}
		total += len(got)
	}
	// The subscription has every one of them, once, in order.
	waitFor("the subscription to deliver every stored event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) >= total
	})
	stopSub()
	if err := <-subDone; !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeToAll: got %v, want it running until cancelled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != total {
		t.Errorf("subscription: got %d events, want %d", len(delivered), total)
	}
	for _, w := range ws {
		for _, id := range w.stored {
			if !seen[id] {
				t.Errorf("subscription: event %s of %s never delivered", id, w.stream)
			}
		}
	}
	for _, e := range append(append(subErrs, late...), other...) {
		t.Error(e)
	}
}

// TestSubscriptionFollowsTheLeader: after an election the old leader, now
// a follower, refuses the resubscription (it requires the leader) after
// confirming it; with no other call to make the client reconnect, the
// store still finds the new leader and the subscription carries on there.
func TestSubscriptionFollowsTheLeader(t *testing.T) {
	t.Parallel()
	cluster := esdbtest.StartCluster(t)
	s := openOn(t, cluster.URL())
	writer := openOn(t, cluster.URL())
	ctx := waitCtx(t)
	first, second := newEvent(0), newEvent(1)
	if _, err := writer.Append(ctx, eventstore.WorkspaceStream(uuid.New()), eventstore.NoStream{}, first); err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	elected := false
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
		for _, e := range b.Events {
			got = append(got, e.ID)
		}
		if b.CaughtUp && !elected && len(got) == 1 {
			elected = true
			cluster.Elect(1)
			cluster.Node(0).DropSubscriptions()
			if _, err := writer.Append(ctx, eventstore.WorkspaceStream(uuid.New()), eventstore.NoStream{}, second); err != nil {
				return err
			}
		}
		if len(got) == 2 {
			return context.Canceled
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeToAll after a leader change: got %v with %d events, want the event appended on the new leader", err, len(got))
	}
	if got[0] != first.ID || got[1] != second.ID {
		t.Errorf("events: got %v, want %s then %s", got, first.ID, second.ID)
	}
	if n := cluster.Node(1).Subscriptions(); n == 0 {
		t.Errorf("subscriptions on the new leader: got none, want the resubscription there")
	}
}
