// Package esdbtest is an in-process gRPC server that speaks the part of
// EventStoreDB's Streams service that the official Go client uses for
// usersd: appends with expected revisions and idempotency by event id, reads
// of a stream and of $all with filters, and catch-up subscriptions to $all
// (confirmation, events, checkpoints, caught-up), plus gossip naming itself
// the leader so that cluster connection strings work. EventStoreDB cannot run on
// our machines, so the esdb adapter is proven against this; it keeps
// everything in memory and is no database.
//
// Where EventStoreDB's behaviour matters to the adapter, the server copies
// it: idempotency is checked within the target stream only, a half-repeated
// append is refused as a wrong expected version, an idempotent repeat
// answers without a position, positions are byte-offset-like numbers, and a
// filtered subscription sends checkpoints while it skips records.
package esdbtest

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
)

// Positions grow by recordSize per record, starting at firstPosition, so
// that they look like the log offsets of a real server and no test can
// mistake them for counts.
const (
	firstPosition = 1_000
	recordSize    = 137
)

// record is one stored event.
type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	position    uint64 // commit and prepare position alike
	eventType   string
	contentType string
	data        []byte
	metadata    []byte
	created     time.Time
}

// Server is a running test server. Start one per test.
type Server struct {
	api.UnimplementedStreamsServer

	addr string
	srv  *grpc.Server

	mu      sync.Mutex
	log     []*record
	streams map[string][]*record
	// changed is closed and replaced by every append, waking subscriptions.
	changed chan struct{}
	// drop is closed by DropSubscriptions, ending every live subscription.
	drop chan struct{}
	// subscriptions counts the subscriptions ever confirmed.
	subscriptions int
	// failAppends makes the next appends store their events and then answer
	// an error, as when a leader dies between commit and reply.
	failAppends int
	// leader, when set, is the address of the node to send appends to: this
	// one answers them "not leader", as a follower does after an election.
	leader string
}

// Start starts a server on 127.0.0.1 with an ephemeral port; it stops when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0")
}

// StartOn starts a server on addr, such as the address of a server that
// stopped: a test of reconnection.
func StartOn(t testing.TB, addr string) *Server {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("esdbtest: listen: %v", err)
	}
	s := &Server{
		addr:    lis.Addr().String(),
		srv:     grpc.NewServer(),
		streams: make(map[string][]*record),
		changed: make(chan struct{}),
		drop:    make(chan struct{}),
	}
	// The client takes Unimplemented from the server-features service as
	// "an older server" and carries on, so that one is left out. It reads
	// gossip only with a discovery or gossip-seed connection string.
	api.RegisterStreamsServer(s.srv, s)
	gossipapi.RegisterGossipServer(s.srv, gossip{id: uuid.New(), addr: s.addr})
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// Stop stops the server at once, as a node failure does.
func (s *Server) Stop() { s.srv.Stop() }

// URL is the connection string of the server: plain text, single node.
func (s *Server) URL() string { return "esdb://" + s.addr + "?tls=false" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// DropSubscriptions ends every live subscription with Unavailable, as a
// node restart or a leader change does.
// Subscriptions started afterwards are not affected.
func (s *Server) DropSubscriptions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.drop)
	s.drop = make(chan struct{})
}

// Subscriptions reports how many subscriptions the server has confirmed.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscriptions
}

// FailAppendsAfterStoring makes the next n appends store their events and
// then answer Unavailable: the client cannot tell whether they were stored.
func (s *Server) FailAppendsAfterStoring(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAppends = n
}

// FollowLeader makes the server a follower of the server at addr: it
// refuses appends with EventStoreDB's "not leader" answer, which names the
// leader for the client to reconnect to. An empty addr makes it lead again.
func (s *Server) FollowLeader(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leader = addr
}

// Len reports how many events the server holds.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// ticks renders a time the way the server's "created" metadata does: .NET
// ticks (100 ns) since the Unix epoch.
func ticks(t time.Time) string { return strconv.FormatInt(t.UnixNano()/100, 10) }
