package esdbtest_test

import (
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// TestFollowersServeALaggingCopy: through gossip the client reaches the
// leader; a follower serves reads from its own copy, stale while its
// replication is held, and forwards appends to the leader.
func TestFollowersServeALaggingCopy(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	f := client(t, cl.Node(1).URL()) // straight to a follower
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("First"))
	for i := range esdbtest.ClusterSize {
		if got := cl.Node(i).Len(); got != 1 {
			t.Errorf("node %d: got %d events, want 1", i, got)
		}
	}

	cl.HoldReplication(1)
	mustAppend(t, c, "s", esdbclient.Revision(0), event("Second"))
	mustAppend(t, f, "s", esdbclient.Revision(1), event("Forwarded")) // stored on the leader
	if got, _ := readStream(timeout(t), f, "s"); len(got) != 1 {
		t.Errorf("read on the held follower: got %d events, want its stale 1", len(got))
	}
	if got, _ := readStream(timeout(t), c, "s"); len(got) != 3 {
		t.Errorf("read on the leader: got %d events, want 3", len(got))
	}
	cl.ReleaseReplication(1)
	if got, _ := readStream(timeout(t), f, "s"); len(got) != 3 {
		t.Errorf("read on the follower once released: got %d events, want 3", len(got))
	}
}

// TestSubscriptionOnALaggingFollower: a subscription a follower serves
// sees new events only once they reach its copy.
func TestSubscriptionOnALaggingFollower(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	f := client(t, cl.Node(2).URL())
	sub := subscribe(t, f, ours(0, 0))
	recvUntil(t, sub, caughtUps(1))
	cl.HoldReplication(2)
	e := event("Ours")
	mustAppend(t, c, "ours-1", esdbclient.Any{}, e)
	if got, err := readStream(timeout(t), f, "ours-1"); codeOf(err) != esdbclient.ErrorCodeResourceNotFound {
		t.Errorf("read on the held follower: got %v, %v, want not found yet", got, err)
	}
	cl.ReleaseReplication(2)
	wantOnlyEvent(t, sub, e.EventID, "subscription on the follower")
}

// TestRequiresLeader: with the requires-leader header a follower answers
// "not leader" naming the leader, and the client reconnects there; a
// subscription gets the answer after its confirmation, as a drop.
func TestRequiresLeader(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("First"))
	cl.HoldReplication(1)
	mustAppend(t, c, "s", esdbclient.Revision(0), event("Second"))

	f := client(t, cl.Node(1).URL())
	ctx := leaderOnly(timeout(t))
	if _, err := readStream(ctx, f, "s"); codeOf(err) != esdbclient.ErrorCodeNotLeader {
		t.Fatalf("read requiring the leader on a follower: got %v, want ErrorCodeNotLeader", err)
	}
	if got, err := readStream(ctx, f, "s"); err != nil || len(got) != 2 {
		t.Errorf("the same read again: got %d events, %v, want both, from the leader", len(got), err)
	}

	a := client(t, cl.Node(2).URL())
	_, err := a.AppendToStream(ctx, "s", esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Revision(1)}, event("Third"))
	if codeOf(err) != esdbclient.ErrorCodeNotLeader {
		t.Errorf("append requiring the leader on a follower: got %v, want ErrorCodeNotLeader", err)
	}
	if _, err := a.AppendToStream(ctx, "s", esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Revision(1)}, event("Third")); err != nil {
		t.Errorf("the same append again: got %v, want it stored by the leader", err)
	}

	s := client(t, cl.Node(1).URL())
	sub, err := s.SubscribeToAll(ctx, ours(0, 0))
	if err != nil {
		t.Fatalf("subscription requiring the leader on a follower: got %v, want it confirmed first", err)
	}
	defer sub.Close()
	got := recvUntil(t, sub, caughtUps(1))
	if len(got) != 1 || got[0].kind != "dropped" {
		t.Fatalf("subscription requiring the leader on a follower: got %v, want it dropped", got)
	}
	wantStatus(t, "its drop", got[0].err, codes.NotFound, "Leader info available")
}

// TestElection: during an election appends answer "not ready" and
// discovery finds no node; then the new leader takes appends, a new epoch
// shows in $all, and the old leader follows.
func TestElection(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("Before"))
	before := readAllEvents(t, c)

	done := cl.Election(1, 500*time.Millisecond)
	_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, event("During"))
	if codeOf(err) != esdbclient.ErrorUnavailable {
		t.Errorf("append during the election: got %v, want ErrorUnavailable", err)
	}
	wantStatus(t, "its status", err, codes.Unavailable, "Server Is Not Ready")
	fresh := client(t, cl.URL()+"&maxDiscoverAttempts=1")
	if _, err := fresh.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, event("During")); err == nil {
		t.Errorf("discovery during the election: got a node, want none eligible")
	}
	<-done

	if cl.Leader() != cl.Node(1) || cl.Node(0).State() != esdbtest.StateFollower {
		t.Errorf("after the election: got leader %v, node 0 %v, want node 1 leading", cl.Leader(), cl.Node(0).State())
	}
	mustAppend(t, c, "s", esdbclient.Revision(0), event("After"))
	epochs := 0
	for _, e := range readAllEvents(t, c)[len(before):] {
		if e.StreamID == "$epoch-information" {
			epochs++
		}
	}
	if epochs != 1 {
		t.Errorf("new epochs in $all: got %d, want 1", epochs)
	}
}

// TestNodesDown: with one follower down, writes commit; with both, they
// time out (Aborted) and commit when a follower is back, with its data.
func TestNodesDown(t *testing.T) {
	t.Parallel()
	cl := esdbtest.StartCluster(t, esdbtest.WithWriteTimeout(100*time.Millisecond))
	c := client(t, cl.URL())
	cl.Node(2).Stop()
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("One down"))
	cl.Node(1).Stop()
	_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.Revision(0)}, event("Both down"))
	if codeOf(err) != esdbclient.ErrorAborted {
		t.Errorf("append with both followers down: got %v, want ErrorAborted", err)
	}
	cl.Node(1).Restart(t)
	f := client(t, cl.Node(1).URL())
	got, err := readStream(timeout(t), f, "s")
	if err != nil || len(got) != 2 {
		t.Errorf("read on the restarted follower: got %d events, %v, want both, the timed-out one committed", len(got), err)
	}
	if st := cl.Node(1).State(); st != esdbtest.StateFollower {
		t.Errorf("restarted node: got state %v, want Follower", st)
	}
}

// TestDiscoverURL: esdb+discover through one node reads the membership
// from its gossip and reaches the leader, wherever it is.
func TestDiscoverURL(t *testing.T) {
	t.Parallel()
	cl := esdbtest.StartCluster(t)
	cl.Elect(2)
	c := client(t, cl.DiscoverURL())
	cl.HoldReplication(0) // node 0 would serve a stale read
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("One"))
	if got, err := readStream(timeout(t), c, "s"); err != nil || len(got) != 1 {
		t.Errorf("read through discovery: got %d events, %v, want the one from the leader", len(got), err)
	}
}

// TestReplicationLag: a follower with a lag reads records only once they
// have been committed that long; its subscriptions get them then.
func TestReplicationLag(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	f := client(t, cl.Node(1).URL())
	cl.SetReplicationLag(1, time.Hour)
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("One"))
	if _, err := readStream(timeout(t), f, "s"); codeOf(err) != esdbclient.ErrorCodeResourceNotFound {
		t.Errorf("read on a follower an hour behind: got %v, want not found", err)
	}
	cl.SetReplicationLag(1, 0)
	if got, err := readStream(timeout(t), f, "s"); err != nil || len(got) != 1 {
		t.Errorf("read on the follower without lag: got %d events, %v, want 1", len(got), err)
	}

	cl.SetReplicationLag(1, 20*time.Millisecond)
	sub := subscribe(t, f, ours(0, 0))
	recvUntil(t, sub, caughtUps(1))
	e := event("Ours")
	mustAppend(t, c, "ours-1", esdbclient.Any{}, e)
	wantOnlyEvent(t, sub, e.EventID, "subscription on the lagging follower")
}

// TestSingleNodeElection: a single node in PreLeader for a while answers
// appends "not ready" and cannot be discovered; then it leads again.
func TestSingleNodeElection(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := client(t, "esdb://"+srv.Addr()+","+srv.Addr()+"?tls=false")
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("Before"))
	done := srv.SetStateFor(esdbtest.StatePreLeader, 300*time.Millisecond)
	_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, event("During"))
	if codeOf(err) != esdbclient.ErrorUnavailable {
		t.Errorf("append while PreLeader: got %v, want ErrorUnavailable", err)
	}
	<-done
	mustAppend(t, c, "s", esdbclient.Revision(0), event("After"))
}
