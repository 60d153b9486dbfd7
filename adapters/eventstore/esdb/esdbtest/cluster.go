package esdbtest

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// ClusterSize is the number of nodes of a Cluster.
const ClusterSize = 3

// Cluster is three nodes sharing one log: node 0 leads at the start, the
// others follow. See the package documentation.
type Cluster struct {
	t     testing.TB
	st    *store
	nodes []*Server

	mu     sync.Mutex
	timers []*time.Timer
	ticker chan struct{} // closed to stop the lag ticker
}

// StartCluster starts three nodes on 127.0.0.1, each with its own port
// answering gossip with the whole cluster; everything stops when the test
// ends.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	st := newStore(optionsOf(opts))
	c := &Cluster{t: t, st: st}
	for range ClusterSize {
		c.nodes = append(c.nodes, st.addNode())
	}
	c.nodes[0].state = StateLeader
	for _, n := range c.nodes {
		if err := n.listen("127.0.0.1:0"); err != nil {
			t.Fatalf("esdbtest: %v", err)
		}
	}
	st.seed()
	t.Cleanup(func() {
		c.mu.Lock()
		for _, tm := range c.timers {
			tm.Stop()
		}
		if c.ticker != nil {
			close(c.ticker)
		}
		c.mu.Unlock()
		for _, n := range c.nodes {
			n.Stop()
		}
	})
	return c
}

// Node returns node i (0, 1 or 2).
func (c *Cluster) Node(i int) *Server { return c.nodes[i] }

// Leader returns the node in state Leader, or nil during an election.
func (c *Cluster) Leader() *Server {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.leaderLocked()
}

// URL is a connection string naming the three nodes as gossip seeds.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return "esdb://" + strings.Join(addrs, ",") + "?tls=false"
}

// DiscoverURL is an esdb+discover connection string through node 0, as a
// DNS name resolving to one node would give: discovery reads the cluster
// from that node's gossip.
func (c *Cluster) DiscoverURL() string {
	return "esdb+discover://" + c.nodes[0].Addr() + "?tls=false"
}

// Elect makes node i the leader at once, and every other node its
// follower, as at the end of an election. The new leader has every
// committed record (a lagging node first catches up: the real cluster
// elects the most advanced node) but only its own cache of recent ids:
// appends with expected revision any repeated across the failover are
// stored again. It writes a new epoch, which shows in $all.
func (c *Cluster) Elect(i int) {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for j, n := range c.nodes {
		if j == i {
			n.state = StateLeader
			n.held = -1
		} else {
			n.state = StateFollower
		}
	}
	st.writeEpochLocked(c.nodes[i])
	st.commitLocked()
	st.changedLocked()
}

// Election runs an election in the background: at once every node is
// Unknown but the future leader, PreLeader, so that appends, and reads
// requiring the leader, answer "Server Is Not Ready" and discovery finds
// no node to connect to; after d, node newLeader leads (Elect). The
// channel closes then.
func (c *Cluster) Election(newLeader int, d time.Duration) <-chan struct{} {
	st := c.st
	st.mu.Lock()
	for j, n := range c.nodes {
		if j == newLeader {
			n.state = StatePreLeader
		} else {
			n.state = StateUnknown
		}
	}
	st.changedLocked()
	st.mu.Unlock()
	done := make(chan struct{})
	c.mu.Lock()
	c.timers = append(c.timers, time.AfterFunc(d, func() {
		c.Elect(newLeader)
		close(done)
	}))
	c.mu.Unlock()
	return done
}

// HoldReplication stops node i's copy where it is: reads and
// subscriptions it serves see nothing newer until ReleaseReplication. A
// held node acknowledges nothing either: with both followers held (or
// stopped), nothing commits and appends time out.
func (c *Cluster) HoldReplication(i int) {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := c.nodes[i]
	if n.held < 0 {
		n.held = st.committed
	}
}

// SetReplicationLag makes follower i read records only once they have
// been committed for at least d (zero: at once), as a real follower is
// behind the leader by its replication and indexing delay. Reads and
// subscriptions it serves are stale by that much; a leader has no lag.
func (c *Cluster) SetReplicationLag(i int, d time.Duration) {
	st := c.st
	st.mu.Lock()
	c.nodes[i].lag = d
	st.changedLocked()
	st.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 && c.ticker == nil {
		// Time makes records visible: wake the subscriptions now and then.
		c.ticker = make(chan struct{})
		go func(stop chan struct{}) {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					st.mu.Lock()
					st.changedLocked()
					st.mu.Unlock()
				}
			}
		}(c.ticker)
	}
}

// ReleaseReplication lets node i catch up at once.
func (c *Cluster) ReleaseReplication(i int) {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	c.nodes[i].held = -1
	st.commitLocked()
	st.changedLocked()
}

// StallReplication makes the followers stop acknowledging writes, as when
// they are slow or cut off: the leader writes each append but cannot
// commit it; after the write timeout it answers Aborted "Operation timed
// out: Commit phase timeout.", and the write stays, to commit on
// ResumeReplication. Until then nobody reads it, and a repeat of it with
// the same ids is dropped (another time-out) rather than stored twice.
func (c *Cluster) StallReplication() {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stalled = true
}

// ResumeReplication commits every write waiting for the followers.
func (c *Cluster) ResumeReplication() {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stalled = false
	st.commitLocked()
}
