package esdb

import (
	"context"
	"errors"
	"fmt"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/metadata"
)

// maxInflight bounds the calls inside one client at a time. It is also the
// most goroutines a client that gives up on discovery can strand (see
// session).
const maxInflight = 128

// A session is one v4 client and the calls running inside it.
//
// The v4 client passes every call through one unbuffered channel to its
// connection loop. While the loop discovers a node, calls wait on that
// channel and ignore their contexts; when a discovery gives up, the loop
// ends without answering them, so they wait forever, and closing the client
// under them panics ("send on closed channel"). The session keeps callers
// out of that:
//
//   - every call runs in a goroutine of its own; the caller waits for it or
//     for its context, whichever ends first (Store.do);
//   - while the client may be discovering (a new client, or one whose last
//     call ended "unavailable" or "not leader", after which the client
//     rediscovers), only one call goes in at a time, the pilot, and only
//     once no other call is inside; the others wait outside, on their
//     contexts, until a call gets an answer from a server;
//   - a client whose loop has ended (its discovery gave up) takes no more
//     calls; the store makes a new one;
//   - a client is closed only when no call is inside it. One whose loop
//     ended with calls stranded inside is left open with them: leaked, at
//     most maxInflight goroutines, and only a client that had connected
//     can strand any (calls go in freely only then).
type session struct {
	client *esdbclient.Client

	mu       sync.Mutex
	state    sessionState
	inflight int
	pilot    bool
	retired  bool // replaced, or the store closed: close once empty
	closed   bool
	// changed is closed and replaced whenever a waiting caller may now get
	// in (or must go elsewhere).
	changed chan struct{}
}

type sessionState int

const (
	connecting sessionState = iota // discovery may be due or running
	connected                      // the last call got a server's answer
	dead                           // the connection loop has ended
)

var (
	// errGone tells a caller that the session takes no more calls.
	errGone = errors.New("esdb client retired")
	// errGaveUp is the answer of a store on a client it did not make, once
	// that client has given up on discovery.
	errGaveUp = errors.New("the esdb client gave up on discovering a node, and this store cannot replace it (esdb.New)")
)

func newSession(c *esdbclient.Client) *session {
	return &session{client: c, changed: make(chan struct{})}
}

// enter waits until the call may go in, or ctx ends. pilot reports that the
// call goes in alone, to find out whether the client connects.
func (ss *session) enter(ctx context.Context) (pilot bool, err error) {
	for {
		ss.mu.Lock()
		switch {
		case ss.state == dead || ss.retired:
			ss.mu.Unlock()
			return false, errGone
		case ss.state == connected && ss.inflight < maxInflight:
			ss.inflight++
			ss.mu.Unlock()
			return false, nil
		case ss.state == connecting && !ss.pilot && ss.inflight == 0:
			ss.inflight++
			ss.pilot = true
			ss.mu.Unlock()
			return true, nil
		}
		wait := ss.changed
		ss.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-wait:
		}
	}
}

// leave records what a call learnt about the client; it runs when the
// client's call returns, which may be long after the caller gave up.
func (ss *session) leave(pilot bool, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.inflight--
	if pilot {
		ss.pilot = false
	}
	before := ss.state
	switch connectionOutcome(err) {
	case outcomeAnswered:
		if ss.state == connecting {
			ss.state = connected
		}
	case outcomeReconnecting:
		if ss.state == connected {
			ss.state = connecting
		}
	case outcomeDead:
		ss.state = dead
	}
	ss.closeIfDone()
	// Wake the waiting callers only when one of them may now get in: the
	// common case, a call leaving a connected client with room, wakes
	// nobody.
	if pilot || ss.state != before || ss.inflight == 0 || ss.inflight == maxInflight-1 || ss.retired {
		ss.broadcast()
	}
}

// retire stops new calls and closes the client once no call is inside. It
// reports how many calls are inside now.
func (ss *session) retire() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.retired = true
	ss.closeIfDone()
	ss.broadcast()
	return ss.inflight
}

// isDead reports whether the session's client has ended its connection
// loop.
func (ss *session) isDead() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.state == dead
}

func (ss *session) closeIfDone() {
	if ss.retired && ss.inflight == 0 && !ss.closed {
		ss.closed = true
		_ = ss.client.Close()
	}
}

func (ss *session) broadcast() {
	close(ss.changed)
	ss.changed = make(chan struct{})
}

// outcome is what a call's result says about the client's connection.
type outcome int

const (
	outcomeUnknown      outcome = iota // the caller's context ended first: no news
	outcomeAnswered                    // a server answered: connected
	outcomeReconnecting                // the client has dropped its connection and will discover again
	outcomeDead                        // the client's connection loop has ended
)

func connectionOutcome(err error) outcome {
	switch {
	case err == nil:
		return outcomeAnswered
	case discoveryGaveUp(err) || codeOf(err) == esdbclient.ErrorCodeConnectionClosed:
		return outcomeDead
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return outcomeUnknown
	case codeOf(err) == esdbclient.ErrorUnavailable || codeOf(err) == esdbclient.ErrorCodeNotLeader:
		return outcomeReconnecting
	}
	return outcomeAnswered
}

// current returns the session to call through.
func (s *Store) current() (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return s.sess, nil
}

// renew replaces old, whose client's connection loop has ended, by a
// session on a new client. It reports whether calls may go on (false for a
// store on a client it did not make, or a closed store).
func (s *Store) renew(old *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.config == nil {
		return false
	}
	if s.sess != old {
		return true // another call renewed it already
	}
	fresh, err := esdbclient.NewClient(s.config)
	if err != nil {
		s.log.Error("esdb: new client", "err", err)
		return false
	}
	s.sess = newSession(fresh)
	if stranded := old.retire(); stranded > 0 {
		// Closing that client would panic the calls inside it; they are
		// left where they are (see session).
		s.log.Warn("esdb: client gave up on discovery with calls inside; replaced it and left it open",
			"stranded", stranded)
	} else {
		s.log.Warn("esdb: client gave up on discovery; replaced it")
	}
	return true
}

// do runs call on the store's client, with requires-leader set, and returns
// by ctx's end whatever the client does. A client that gave up on
// discovery before the call went in is replaced and the call made on the
// new one.
func (s *Store) do(ctx context.Context, call func(ctx context.Context, c *esdbclient.Client) error) error {
	for {
		ss, err := s.current()
		if err != nil {
			return err
		}
		pilot, err := ss.enter(ctx)
		if errors.Is(err, errGone) {
			if ss.isDead() && s.renew(ss) {
				continue
			}
			if _, cerr := s.current(); cerr != nil {
				return cerr
			}
			return errGaveUp
		}
		if err != nil {
			return fmt.Errorf("waiting for a connection to the event store: %w", err)
		}

		callCtx := leaderOnly(ctx)
		done := make(chan error, 1)
		go func() {
			err := protect(func() error { return call(callCtx, ss.client) })
			ss.leave(pilot, err)
			done <- err
		}()
		select {
		case err = <-done:
		case <-ctx.Done():
			// The call goes on inside the client until the client lets it
			// go: gRPC sees the same context end, the client's own waits
			// on its connection loop do not.
			return ctx.Err()
		}
		if codeOf(err) == esdbclient.ErrorCodeConnectionClosed && !errors.Is(err, errClosed) {
			// The client had closed itself before this call reached it:
			// nothing was sent, and a new client may take it.
			if s.renew(ss) {
				continue
			}
		}
		if discoveryGaveUp(err) {
			s.renew(ss)
		}
		return err
	}
}

// protect turns a panic of the client into an error: a client bug must not
// end the process.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("esdb client panicked: %v", r)
		}
	}()
	return f()
}

// leaderOnly marks every call as one only the leader may answer. The v4
// client sets "requires-leader" on the incoming context, where gRPC never
// sends it; as outgoing metadata it reaches the server, and a follower
// answers "not leader" (naming the leader, to which the client reconnects)
// instead of serving a read from its possibly lagging copy or forwarding an
// append.
func leaderOnly(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "requires-leader", "true")
}
