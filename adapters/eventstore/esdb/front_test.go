package esdb_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// A front is a node of a test cluster: a gRPC server in front of an
// esdbtest server (the backend, whose data every front of a cluster
// shares, as replicated nodes do). It answers gossip as its cluster says,
// acts on its state as KurrentDB does (a leader serves, a follower answers
// "not leader" to calls that require the leader, a node in an election
// answers "Server Is Not Ready" and drops its subscriptions), records the
// metadata of every call, and lets a test script the answers of the next
// calls. It exists for what esdbtest alone does not show: answers of a
// real cluster the adapter must survive.
type front struct {
	api.UnimplementedStreamsServer

	cluster *fakeCluster
	backend *esdbtest.Server
	id      uuid.UUID
	addr    string
	srv     *grpc.Server

	mu      sync.Mutex
	state   gossipapi.MemberInfo_VNodeState
	appends []hook // answers of the next appends, first first
	reads   []hook // of the next reads of a stream
	subs    []hook // of the next subscriptions
	// sendAfter, when set, gives extra messages to send after each
	// message of a subscription (a server's bogus checkpoints).
	sendAfter func(m *api.ReadResp) []*api.ReadResp
	headers   []metadata.MD // of every Streams call, in order
	calls     map[string]int
	live      map[*liveSub]bool
}

// A hook answers one call. pass hands the call to the backend (for an
// append, it stores the events and keeps the backend's reply, which the
// front sends if the hook returns nil). A hook that does not pass may set
// trailers on ss.
type hook func(ss grpc.ServerStream, pass func() error) error

type liveSub struct{ cancel context.CancelFunc }

// fakeCluster is the membership the fronts' gossip reports.
type fakeCluster struct {
	mu     sync.Mutex
	fronts []*front
}

// startFronts starts n fronts on one backend; the first is the leader, the
// others followers.
func startFronts(t *testing.T, backend *esdbtest.Server, n int) []*front {
	t.Helper()
	c := &fakeCluster{}
	for i := range n {
		state := gossipapi.MemberInfo_Follower
		if i == 0 {
			state = gossipapi.MemberInfo_Leader
		}
		c.fronts = append(c.fronts, startFront(t, c, backend, state))
	}
	return c.fronts
}

func startFront(t *testing.T, c *fakeCluster, backend *esdbtest.Server, state gossipapi.MemberInfo_VNodeState) *front {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{
		cluster: c, backend: backend, id: uuid.New(), addr: lis.Addr().String(),
		srv: grpc.NewServer(), state: state,
		calls: map[string]int{}, live: map[*liveSub]bool{},
	}
	api.RegisterStreamsServer(f.srv, f)
	gossipapi.RegisterGossipServer(f.srv, frontGossip{f: f})
	go func() { _ = f.srv.Serve(lis) }()
	t.Cleanup(f.srv.Stop)
	return f
}

// url is a connection string naming only this front (no discovery).
func (f *front) url() string { return "esdb://" + f.addr + "?tls=false" }

// seedsURL is a gossip-seed connection string naming every front.
func seedsURL(fronts []*front, params string) string {
	u := "esdb://"
	for i, f := range fronts {
		if i > 0 {
			u += ","
		}
		u += f.addr
	}
	return u + "?tls=false" + params
}

// setStates sets every front's state at once, as one gossip round shows
// them; a front that leaves the leader's or a follower's state drops its
// subscriptions.
func (c *fakeCluster) setStates(states ...gossipapi.MemberInfo_VNodeState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range c.fronts {
		f.mu.Lock()
		f.state = states[i]
		var drop []*liveSub
		if !serving(states[i]) {
			for l := range f.live {
				drop = append(drop, l)
			}
		}
		f.mu.Unlock()
		for _, l := range drop {
			l.cancel()
		}
	}
}

func serving(s gossipapi.MemberInfo_VNodeState) bool {
	return s == gossipapi.MemberInfo_Leader || s == gossipapi.MemberInfo_Follower
}

// leader returns the leader's address, or "".
func (c *fakeCluster) leader() string {
	for _, f := range c.fronts {
		f.mu.Lock()
		s := f.state
		f.mu.Unlock()
		if s == gossipapi.MemberInfo_Leader {
			return f.addr
		}
	}
	return ""
}

// frontGossip is a front's gossip service.
type frontGossip struct {
	gossipapi.UnimplementedGossipServer
	f *front
}

// Read answers gossip: every front as the cluster sees it.
func (g frontGossip) Read(context.Context, *shared.Empty) (*gossipapi.ClusterInfo, error) {
	f := g.f
	f.cluster.mu.Lock()
	defer f.cluster.mu.Unlock()
	info := &gossipapi.ClusterInfo{}
	for _, m := range f.cluster.fronts {
		host, port, _ := net.SplitHostPort(m.addr)
		p, _ := strconv.ParseUint(port, 10, 16)
		m.mu.Lock()
		state := m.state
		m.mu.Unlock()
		info.Members = append(info.Members, &gossipapi.MemberInfo{
			InstanceId:   &shared.UUID{Value: &shared.UUID_String_{String_: m.id.String()}},
			TimeStamp:    time.Now().UnixNano() / 100,
			State:        state,
			IsAlive:      true,
			HttpEndPoint: &gossipapi.EndPoint{Address: host, Port: uint32(p)},
		})
	}
	return info, nil
}

// onAppends, onReads and onSubscribes script the next calls' answers.
func (f *front) onAppends(h ...hook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appends = append(f.appends, h...)
}

func (f *front) onReads(h ...hook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, h...)
}

func (f *front) onSubscribes(h ...hook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, h...)
}

// callCount reports how many calls of a kind ("append", "read",
// "subscribe") reached the front.
func (f *front) callCount(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind]
}

// metadata returns the metadata of every Streams call so far.
func (f *front) metadata() []metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]metadata.MD(nil), f.headers...)
}

// begin records a call and returns its hook, or the answer the front's
// state gives, or nil.
func (f *front) begin(ss grpc.ServerStream, kind string, queue *[]hook) hook {
	md, _ := metadata.FromIncomingContext(ss.Context())
	leader := f.cluster.leader()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headers = append(f.headers, md.Copy())
	f.calls[kind]++
	switch f.state {
	case gossipapi.MemberInfo_Leader:
	case gossipapi.MemberInfo_Follower:
		if first(md, "requires-leader") == "true" {
			if leader != "" {
				return notLeader(leader)
			}
			return fail(codes.Unknown, "No leader info available in response")
		}
	default:
		return fail(codes.Unavailable, "Server Is Not Ready")
	}
	if len(*queue) == 0 {
		return nil
	}
	h := (*queue)[0]
	*queue = (*queue)[1:]
	return h
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Append implements the Streams service.
func (f *front) Append(stream api.Streams_AppendServer) error {
	h := f.begin(stream, "append", &f.appends)
	w := &appendReply{Streams_AppendServer: stream}
	pass := func() error { return f.backend.Append(w) }
	var err error
	if h == nil {
		err = pass()
	} else {
		err = h(stream, pass)
	}
	if err != nil {
		if !w.drained {
			// Read the whole request first, as the client's status
			// would otherwise race with its sends.
			for {
				if _, rerr := stream.Recv(); rerr != nil {
					break
				}
			}
		}
		return err
	}
	if w.reply == nil {
		return status.Error(codes.Internal, "front: the backend sent no reply")
	}
	return stream.SendAndClose(w.reply)
}

// appendReply keeps the backend's reply, for the front to send or drop.
type appendReply struct {
	api.Streams_AppendServer
	reply   *api.AppendResp
	drained bool
}

func (a *appendReply) SendAndClose(r *api.AppendResp) error { a.reply = r; return nil }

func (a *appendReply) Recv() (*api.AppendReq, error) {
	m, err := a.Streams_AppendServer.Recv()
	if errors.Is(err, io.EOF) {
		a.drained = true
	}
	return m, err
}

// Read implements the Streams service: reads of a stream and
// subscriptions (the adapter reads $all only by subscribing).
func (f *front) Read(req *api.ReadReq, out api.Streams_ReadServer) error {
	kind, queue := "read", &f.reads
	if req.GetOptions().GetSubscription() != nil {
		kind, queue = "subscribe", &f.subs
	}
	h := f.begin(out, kind, queue)
	ctx, cancel := context.WithCancel(out.Context())
	defer cancel()
	l := &liveSub{cancel: cancel}
	f.mu.Lock()
	f.live[l] = true
	extra := f.sendAfter
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.live, l)
		f.mu.Unlock()
	}()
	w := &readStream{Streams_ReadServer: out, ctx: ctx, extra: extra}
	pass := func() error {
		err := f.backend.Read(req, w)
		if ctx.Err() != nil && out.Context().Err() == nil {
			return status.Error(codes.Unavailable, "front: the node left its state; subscription dropped")
		}
		return err
	}
	if h == nil {
		return pass()
	}
	return h(out, pass)
}

// readStream gives the backend a context the front can cancel, and adds
// the scripted extra messages.
type readStream struct {
	api.Streams_ReadServer
	ctx   context.Context
	extra func(m *api.ReadResp) []*api.ReadResp
}

func (r *readStream) Context() context.Context { return r.ctx }

func (r *readStream) Send(m *api.ReadResp) error {
	if err := r.Streams_ReadServer.Send(m); err != nil {
		return err
	}
	if r.extra == nil {
		return nil
	}
	for _, x := range r.extra(m) {
		if err := r.Streams_ReadServer.Send(x); err != nil {
			return err
		}
	}
	return nil
}

// fail answers a call with a status.
func fail(code codes.Code, msg string) hook {
	return func(grpc.ServerStream, func() error) error { return status.Error(code, msg) }
}

// failAfterStoring stores the append, then answers a status instead of the
// reply: the write committed, the client cannot tell.
func failAfterStoring(code codes.Code, msg string) hook {
	return func(_ grpc.ServerStream, pass func() error) error {
		if err := pass(); err != nil {
			return err
		}
		return status.Error(code, msg)
	}
}

// notLeader is KurrentDB's answer of a follower to a call that requires
// the leader.
func notLeader(leader string) hook {
	return func(ss grpc.ServerStream, _ func() error) error {
		host, port, _ := net.SplitHostPort(leader)
		ss.SetTrailer(metadata.Pairs("exception", "not-leader", "leader-endpoint-host", host, "leader-endpoint-port", port))
		return status.Error(codes.NotFound, "Leader info available")
	}
}

// deleted is KurrentDB's answer for a deleted (tombstoned) stream.
func deleted(stream string) hook {
	return func(ss grpc.ServerStream, _ func() error) error {
		ss.SetTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", stream))
		return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", stream)
	}
}

// hang never answers: the call ends only when the client gives up.
func hang(ss grpc.ServerStream, _ func() error) error {
	<-ss.Context().Done()
	return status.FromContextError(ss.Context().Err()).Err()
}
