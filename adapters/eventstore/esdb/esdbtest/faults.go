package esdbtest

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Op names a kind of call a fault can be injected into.
type Op int

const (
	// OpAppend is an append.
	OpAppend Op = iota + 1
	// OpReadStream is a read of one stream.
	OpReadStream
	// OpReadAll is a read of $all.
	OpReadAll
	// OpSubscribe is a subscription to $all.
	OpSubscribe
	// OpDelete is a soft delete or a tombstone.
	OpDelete
)

var opNames = map[Op]string{
	OpAppend:     "append",
	OpReadStream: "read stream",
	OpReadAll:    "read $all",
	OpSubscribe:  "subscribe to $all",
	OpDelete:     "delete",
}

func (o Op) String() string { return nameOf(opNames, o, "op") }

// nameOf is the name of an Op or a Fault, or its kind and number if it has
// none.
func nameOf[K ~int](names map[K]string, k K, kind string) string {
	if name, ok := names[k]; ok {
		return name
	}
	return kind + " " + strconv.Itoa(int(k))
}

// Fault is an error answer exactly as a real server sends it (status
// code, message and trailers: KurrentDB's RpcExceptions), so that the
// client maps it to the same Go error.
type Fault int

const (
	// Timeout is Aborted "Operation timed out: ...": the server gave up
	// waiting (client code ErrorAborted). An injected one on an append
	// stores nothing.
	Timeout Fault = iota + 1
	// NotReady is Unavailable "Server Is Not Ready" (ErrorUnavailable; the
	// client rediscovers before its next call).
	NotReady
	// TooBusy is Unavailable "Server Is Too Busy" (ErrorUnavailable).
	TooBusy
	// NoLeaderInfo is Unknown "No leader info available in response"
	// (ErrorCodeUnknown).
	NoLeaderInfo
	// NotLeader is NotFound "Leader info available" with the leader's
	// host and port in the trailers (ErrorCodeNotLeader; the client
	// reconnects there). It names the cluster's leader, or this node.
	NotLeader
	// InvalidPosition is InvalidArgument "Trying to read from an invalid
	// position." (ErrorCodeUnknown).
	InvalidPosition
	// AccessDenied is PermissionDenied "Access Denied"
	// (ErrorCodeAccessDenied). On a subscription it comes before the
	// confirmation, as the server checks rights first.
	AccessDenied
)

var faultNames = map[Fault]string{
	Timeout:         "timeout",
	NotReady:        "not ready",
	TooBusy:         "too busy",
	NoLeaderInfo:    "no leader info",
	NotLeader:       "not leader",
	InvalidPosition: "invalid position",
	AccessDenied:    "access denied",
}

func (f Fault) String() string { return nameOf(faultNames, f, "fault") }

type fault struct {
	f Fault
	n int // calls left; negative: until cleared
}

// Inject makes the node answer the next n calls of op with f; a negative
// n makes it answer every call until ClearFaults. A later Inject for the
// same op replaces the earlier one.
func (s *Server) Inject(op Op, f Fault, n int) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if n == 0 {
		delete(s.faults, op)
		return
	}
	s.faults[op] = &fault{f: f, n: n}
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	clear(s.faults)
}

// takeFaultLocked returns the fault to answer a call of op with, if any,
// and counts the call.
func (s *Server) takeFaultLocked(op Op) (Fault, bool) {
	f := s.faults[op]
	if f == nil {
		return 0, false
	}
	if f.n > 0 {
		if f.n--; f.n == 0 {
			delete(s.faults, op)
		}
	}
	return f.f, true
}

// admitLocked answers a call of op with the fault injected into it, if
// any (counting the call), or else routes it (routeLocked).
func (s *Server) admitLocked(ctx context.Context, op Op, write bool) (leader *Server, err error) {
	if f, ok := s.takeFaultLocked(op); ok {
		return nil, s.faultErrorLocked(ctx, f)
	}
	return s.routeLocked(ctx, write)
}

// faultError builds the error of a fault; trailers go out with it.
func (s *Server) faultErrorLocked(ctx context.Context, f Fault) error {
	switch f {
	case Timeout:
		return errTimeout("Prepare phase timeout.")
	case NotReady:
		return errNotReady()
	case TooBusy:
		return status.Error(codes.Unavailable, "Server Is Too Busy")
	case NoLeaderInfo:
		return status.Error(codes.Unknown, "No leader info available in response")
	case NotLeader:
		addr := s.addr
		if l := s.st.leaderLocked(); l != nil {
			addr = l.addr
		}
		return errNotLeader(ctx, addr)
	case InvalidPosition:
		return errInvalidPosition()
	case AccessDenied:
		return errAccessDenied(ctx)
	}
	return status.Error(codes.Unknown, fmt.Sprintf("esdbtest: unknown fault %d", f))
}

func errTimeout(what string) error {
	return status.Error(codes.Aborted, "Operation timed out: "+what)
}

func errNotReady() error { return status.Error(codes.Unavailable, "Server Is Not Ready") }

func errInvalidPosition() error {
	return status.Error(codes.InvalidArgument, "Trying to read from an invalid position.")
}

func errAccessDenied(ctx context.Context) error {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "access-denied"))
	return status.Error(codes.PermissionDenied, "Access Denied")
}

// errNotLeader is the answer of a follower to a call that requires the
// leader: the client reads the leader's address from the trailers.
func errNotLeader(ctx context.Context, leader string) error {
	host, port, _ := net.SplitHostPort(leader)
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "not-leader",
		"leader-endpoint-host", host, "leader-endpoint-port", port))
	return status.Error(codes.NotFound, "Leader info available")
}

func errStreamDeleted(ctx context.Context, stream string) error {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "stream-deleted", "stream-name", stream))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", stream)
}

func errMaxAppendSize(ctx context.Context, limit int) error {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "maximum-append-size-exceeded",
		"maximum-append-size", strconv.Itoa(limit)))
	return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", limit)
}

// requiresLeader reports whether the call carries the requires-leader
// header that a client sends for calls a follower must not serve.
func requiresLeader(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("requires-leader")
	return len(v) > 0 && v[0] == "true"
}

// route decides how a node takes a call: serve it itself, hand a write to
// the leader (forwarded), or refuse it with an error. Reads never go to
// the leader: a follower serves them from its own copy.
func (s *Server) routeLocked(ctx context.Context, write bool) (leader *Server, err error) {
	if s.leader != "" && write { // a single server told to follow another
		return nil, errNotLeader(ctx, s.leader)
	}
	requires := requiresLeader(ctx)
	l := s.st.leaderLocked()
	switch s.state {
	case StateLeader, stateResigningLeader:
		return s, nil
	case StateFollower, statePreReplica, stateCatchingUp, stateClone:
		switch {
		case requires && l == nil:
			return nil, errNotReady()
		case requires:
			return nil, errNotLeader(ctx, l.addr)
		case !write:
			return s, nil
		case l == nil:
			return nil, errNotReady()
		}
		return l, nil
	case StateUnknown, stateDiscoverLeader:
		if write || requires {
			return nil, errNotReady()
		}
		return s, nil
	}
	return nil, errNotReady()
}
