package esdbtest

import (
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
)

// State is a node's state as gossip reports it.
type State = gossipapi.MemberInfo_VNodeState

// The node states a test sets. A node in an election is Unknown; the one
// about to lead is PreLeader first.
const (
	StateLeader       State = gossipapi.MemberInfo_Leader
	StateFollower     State = gossipapi.MemberInfo_Follower
	StatePreLeader    State = gossipapi.MemberInfo_PreLeader
	StateUnknown      State = gossipapi.MemberInfo_Unknown
	StateShuttingDown State = gossipapi.MemberInfo_ShuttingDown

	stateResigningLeader = gossipapi.MemberInfo_ResigningLeader
	statePreReplica      = gossipapi.MemberInfo_PreReplica
	stateCatchingUp      = gossipapi.MemberInfo_CatchingUp
	stateClone           = gossipapi.MemberInfo_Clone
	stateDiscoverLeader  = gossipapi.MemberInfo_DiscoverLeader
)

// Defaults of a real server (KurrentDB's ClusterVNodeOptions and ESConsts).
const (
	// DefaultWriteTimeout is the server's prepare and commit timeout: an
	// append not acknowledged by a majority by then is answered Aborted.
	DefaultWriteTimeout = 2 * time.Second
	// DefaultMaxAppendSize is the largest append (the events' data,
	// metadata and twice their type's length, added up) of servers up to
	// 25.0; 25.1 raised it to the chunk size.
	DefaultMaxAppendSize = 1024 * 1024
	// DefaultIdempotencyCache is the byte budget of the leader's cache of
	// recent event ids.
	DefaultIdempotencyCache = 8 * 1024 * 1024
)

// Option configures a server or a cluster.
type Option func(*options)

type options struct {
	writeTimeout  time.Duration
	maxAppendSize int
	cacheBytes    int
}

// WithWriteTimeout sets how long an append waits for its commit (in a
// cluster: for a follower to acknowledge it) before the server answers
// Aborted "Operation timed out". The default is DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option { return func(o *options) { o.writeTimeout = d } }

// WithMaxAppendSize sets the largest append the server takes; zero means
// no limit (as 25.1 and later in practice). The default is
// DefaultMaxAppendSize.
func WithMaxAppendSize(n int) Option { return func(o *options) { o.maxAppendSize = n } }

// WithIdempotencyCache sets the byte budget of the leader's cache of
// recent event ids (each costs about 50 bytes plus twice its stream
// name's length); zero disables it. The default is DefaultIdempotencyCache.
func WithIdempotencyCache(bytes int) Option { return func(o *options) { o.cacheBytes = bytes } }

func optionsOf(opts []Option) options {
	o := options{writeTimeout: DefaultWriteTimeout, maxAppendSize: DefaultMaxAppendSize, cacheBytes: DefaultIdempotencyCache}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Server is one node: a single-node server (Start) or a node of a Cluster.
type Server struct {
	api.UnimplementedStreamsServer

	st   *store
	addr string
	id   uuid.UUID

	// Guarded by st.mu.
	srv   *grpc.Server
	alive bool
	state State
	// held is the number of committed records this follower has, while
	// its replication is held; -1 while it replicates.
	held int
	// lag delays what this follower reads: records committed less than lag
	// ago are not there yet.
	lag   time.Duration
	cache *idCache
	// drop is closed by DropSubscriptions, ending every live subscription.
	drop chan struct{}
	// subscriptions counts the subscriptions ever confirmed.
	subscriptions int
	// failAppends makes the next appends store their events and then
	// answer an error, as when a leader dies between commit and reply.
	failAppends int
	// leader, when set, is the address of the node to send appends to: this
	// one answers them "not leader", as a follower does after an election.
	leader string
	faults map[Op]*fault
}

// Start starts a single-node server on 127.0.0.1 with an ephemeral port;
// it stops when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0", opts...)
}

// StartOn starts a single-node server on addr, such as the address of a
// server that stopped: a test of reconnection. It starts empty (but for
// the server's own system records); Restart keeps the data.
func StartOn(t testing.TB, addr string, opts ...Option) *Server {
	t.Helper()
	st := newStore(optionsOf(opts))
	s := st.addNode()
	s.state = StateLeader
	st.seed()
	if err := s.listen(addr); err != nil {
		t.Fatalf("esdbtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// listen starts serving on addr (host:port, port 0 for any).
func (s *Server) listen(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	// The client takes Unimplemented from the server-features service as
	// "an older server" and carries on, so that one is left out. It reads
	// gossip only with a discovery or gossip-seed connection string.
	api.RegisterStreamsServer(srv, s)
	gossipapi.RegisterGossipServer(srv, gossip{s: s})
	s.st.mu.Lock()
	s.addr = lis.Addr().String()
	s.srv = srv
	s.alive = true
	s.drop = make(chan struct{})
	s.st.changedLocked()
	s.st.commitLocked() // a follower back acknowledges what waits
	s.st.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
	return nil
}

// Stop stops the server at once, as a node failure does: connections
// close and every call in flight ends. Its data stays for Restart.
func (s *Server) Stop() {
	s.st.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.alive = false
	s.st.changedLocked()
	s.st.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart stops the server if it runs and starts it again on the same
// address with its data, as a process restart does: the cache of recent
// event ids is empty and a new epoch is written (a system record in $all).
// A node of a cluster comes back as a follower if there is a leader, a
// single node as leader.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.st.mu.Lock()
	s.cache.clear()
	s.held = -1
	if len(s.st.nodes) == 1 {
		s.state = StateLeader
		s.st.writeEpochLocked(s)
	} else if l := s.st.leaderLocked(); l != nil && l != s {
		s.state = StateFollower
	} else {
		s.state = StateUnknown
	}
	addr := s.addr
	s.st.mu.Unlock()
	// The port may linger a moment after Stop; try for a while.
	var err error
	for range 100 {
		if err = s.listen(addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("esdbtest: restart on %s: %v", addr, err)
}

// URL is the connection string of the server: plain text, single node.
func (s *Server) URL() string { return "esdb://" + s.Addr() + "?tls=false" }

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.addr
}

// DropSubscriptions ends every live subscription with Unavailable, as a
// node restart or a leader change does.
// Subscriptions started afterwards are not affected.
func (s *Server) DropSubscriptions() {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	close(s.drop)
	s.drop = make(chan struct{})
}

// Subscriptions reports how many subscriptions the server has confirmed.
func (s *Server) Subscriptions() int {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.subscriptions
}

// FailAppendsAfterStoring makes the next n appends store their events and
// then answer Unavailable: the client cannot tell whether they were stored.
func (s *Server) FailAppendsAfterStoring(n int) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.failAppends = n
}

// FollowLeader makes a single server act as a follower of the server at
// addr, which has nothing to do with it: it refuses appends with the "not
// leader" answer naming addr, for the client to reconnect there. An empty
// addr makes it lead again. A Cluster has real followers (Cluster.Elect).
func (s *Server) FollowLeader(addr string) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.leader = addr
}

// SetState sets the state the node reports in gossip and acts on: a
// Leader serves everything; a Follower serves reads from its copy and
// forwards appends to the leader (without requires-leader); PreLeader,
// Unknown (an election) and the others answer "Server Is Not Ready" to
// appends, and to reads that require the leader (PreLeader to all reads).
// Use Cluster.Elect to make a node of a cluster the leader.
func (s *Server) SetState(state State) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.state = state
	s.st.changedLocked()
}

// SetStateFor sets the node's state for d, then puts back the state it
// had (with a new epoch in $all if that was Leader, as after an
// election): a single node in PreLeader for a while is an election as its
// clients see it. The channel closes when the state is back.
func (s *Server) SetStateFor(state State, d time.Duration) <-chan struct{} {
	s.st.mu.Lock()
	before := s.state
	s.state = state
	s.st.changedLocked()
	s.st.mu.Unlock()
	done := make(chan struct{})
	time.AfterFunc(d, func() {
		s.st.mu.Lock()
		s.state = before
		if before == StateLeader {
			s.st.writeEpochLocked(s)
		}
		s.st.changedLocked()
		s.st.mu.Unlock()
		close(done)
	})
	return done
}

// State reports the node's state.
func (s *Server) State() State {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.state
}

// Len reports how many events of user streams (not "$"-prefixed) the
// node holds: committed, and replicated to it.
func (s *Server) Len() int {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	n := 0
	for _, r := range s.st.log[:s.st.visibleLocked(s)] {
		if r.event && !isSystem(r.stream) {
			n++
		}
	}
	return n
}

// ticks renders a time the way the server's "created" metadata does: .NET
// ticks (100 ns) since the Unix epoch.
func ticks(t time.Time) string { return strconv.FormatInt(t.UnixNano()/100, 10) }

// store is what the nodes of a cluster (or a single node) share: the
// leader's transaction log and how far it is committed.
type store struct {
	opts options

	mu sync.Mutex
	// log holds every record the leader wrote, committed or not.
	log []*record
	// committed counts the records of log that a majority acknowledged:
	// only those are read, on the leader and followers alike.
	committed int
	end       uint64 // the position after the last record
	streams   map[string]*streamLog
	nodes     []*Server
	// stalled stops commits: the followers acknowledge nothing.
	stalled bool
	epoch   int
	// changed is closed and replaced by every change that subscriptions or
	// waiting appends may care about.
	changed chan struct{}
}

func newStore(o options) *store {
	return &store{opts: o, streams: make(map[string]*streamLog), changed: make(chan struct{})}
}

func (st *store) addNode() *Server {
	s := &Server{st: st, id: uuid.New(), held: -1, cache: newIDCache(st.opts.cacheBytes),
		drop: make(chan struct{}), faults: make(map[Op]*fault), state: StateFollower}
	st.nodes = append(st.nodes, s)
	return s
}

func (st *store) changedLocked() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// leaderLocked returns the node in state Leader, or nil.
func (st *store) leaderLocked() *Server {
	for _, n := range st.nodes {
		if n.state == StateLeader {
			return n
		}
	}
	return nil
}

// visibleLocked is how many records of the log node n reads: the committed
// ones, or as many as it had when its replication was held.
func (st *store) visibleLocked(n *Server) int {
	v := st.committed
	if n.held >= 0 && n.held < v {
		v = n.held
	}
	if n.lag > 0 && n.state != StateLeader {
		cut := time.Now().Add(-n.lag)
		v = sort.Search(v, func(i int) bool { return st.log[i].committedAt.After(cut) })
	}
	return v
}

// canCommitLocked reports whether a majority acknowledges writes: a single
// node always; a cluster unless stalled or no follower replicates.
func (st *store) canCommitLocked() bool {
	if st.stalled {
		return false
	}
	if len(st.nodes) == 1 {
		return true
	}
	for _, n := range st.nodes {
		if n.state != StateLeader && n.alive && n.held < 0 {
			return true
		}
	}
	return false
}

// commitLocked commits what can be committed.
func (st *store) commitLocked() {
	if st.committed < len(st.log) && st.canCommitLocked() {
		now := time.Now()
		for _, r := range st.log[st.committed:] {
			r.committedAt = now
		}
		st.committed = len(st.log)
		st.changedLocked()
	}
}

// writeLocked appends records to the log as the leader writes them; they
// are committed at once if a majority acknowledges. The leader remembers
// their ids in its cache.
func (st *store) writeLocked(leader *Server, recs []*record) {
	now := time.Now().UTC()
	for _, r := range recs {
		r.index = len(st.log)
		r.position = st.end
		if r.event {
			r.size = uint64(recordHeader + len(r.stream) + len(r.eventType) + len(r.data) + len(r.metadata))
			r.created = now
			r.truncateBefore = truncateBefore(r.stream, r.data)
			sl := st.streams[r.stream]
			if sl == nil {
				sl = &streamLog{}
				st.streams[r.stream] = sl
			}
			if r.revision == deletedStream {
				sl.tombstone = r
			} else {
				sl.events = append(sl.events, r)
			}
			if leader != nil {
				leader.cache.put(r.id, r.stream, r.revision)
			}
		} else {
			r.size = epochSize
		}
		st.end += r.size
		st.log = append(st.log, r)
	}
	st.changedLocked()
	st.commitLocked()
}

// softDeletedAt reports whether a stream is soft-deleted among the first v
// records, and from which revision it is read ($tb, 0 without).
func (st *store) truncatedAt(name string, v int) (tb int64) {
	meta, _, _ := st.streams[metaStream(name)].view(v)
	if len(meta) == 0 {
		return 0
	}
	if tb := meta[len(meta)-1].truncateBefore; tb > 0 {
		return tb
	}
	return 0
}

// lastIndexedLocked is the position of the last record among the first v.
func (st *store) lastIndexedLocked(v int) tfpos {
	if v == 0 {
		return headOfTf
	}
	return posOf(st.log[v-1])
}

// endOf is the position after the first v records.
func (st *store) endOf(v int) uint64 {
	if v == 0 {
		return 0
	}
	return st.log[v-1].next()
}
