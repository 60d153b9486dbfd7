package esdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
)

// handlerError carries the handler's error out of a subscription, so that
// it ends SubscribeToAll instead of causing a resubscription.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// cursor is how far a subscription has got, across resubscriptions.
type cursor struct {
	// last is the position of the last event handed over, or the
	// subscription's start. It is the checkpoint of every batch without
	// events, and where a resubscription starts.
	last domain.Position
	// live is true once this subscription has caught up (and not fallen
	// behind since): every batch then reaches the end of the stored events.
	live bool
	// delivered counts batches handed over since the last resubscription.
	delivered int
	// foreign counts records skipped as other applications' (see
	// eventstore.IsOurRecord).
	foreign int
}

// SubscribeToAll implements eventstore.Store: a catch-up subscription to
// $all, filtered on the server by this store's stream prefixes (which
// leaves out system streams), from the leader. When the subscription drops
// (node restart, leader change, network), it resubscribes from the last
// event handed to h, after a pause that doubles from the minimum to the
// maximum backoff while resubscriptions fail. It gives up on what no
// resubscription cures: access denied, bad credentials, a start position
// the server does not have (ErrInvalidPosition, naming it).
//
// Every batch's checkpoint is the position of its last event, or of the
// last event handed over before it: never a position the server only
// reported. Some server versions reported checkpoint positions that are
// wrong (KurrentDB 24.10 before 24.10.5: (2^64-1, 2^64-1); 25.0.0: a
// checkpoint past an event not yet delivered), and a projection that kept
// one would resume past events it never applied.
func (s *Store) SubscribeToAll(ctx context.Context, from domain.Position, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	size := positive.Or(opts.BatchSize, defaultBatchSize)
	if from == kdb710 {
		// A server reads this as its end: the subscription would start
		// live there and skip, silently, whatever the checkpoint's owner
		// never applied.
		return fmt.Errorf("subscribe to $all from %v, the checkpoint KurrentDB 24.10.0-24.10.4 sent (KDB-710) and an earlier version of usersd kept: %w", from, ErrInvalidPosition)
	}
	cur := &cursor{last: from}
	wait := s.minBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		cur.live, cur.delivered = false, 0
		err := s.subscribeOnce(ctx, cur, size, h)
		var herr handlerError
		switch {
		case errors.As(err, &herr):
			return herr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errClosed) || errors.Is(err, errGaveUp):
			return fmt.Errorf("subscribe to $all from %v: %w", cur.last, err)
		case grpcCode(err) == codes.InvalidArgument && strings.Contains(strings.ToLower(statusMessage(err)), "position"):
			return fmt.Errorf("subscribe to $all from %v: %w (%v)", cur.last, ErrInvalidPosition, err)
		case permanent(err):
			return fmt.Errorf("subscribe to $all from %v: %w", cur.last, explain(err))
		}
		if cur.delivered > 0 {
			wait = s.minBackoff
		}
		if refused(err) {
			s.nudge(ctx)
		}
		s.log.Warn("esdb: subscription to $all dropped; resubscribing",
			"from", cur.last.String(), "after", wait, "err", err)
		if !pause(ctx, wait) {
			return ctx.Err()
		}
		wait = min(wait*2, s.maxBackoff)
	}
}

// kdb710 is the wrong checkpoint of KDB-710.
var kdb710 = domain.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}

// permanent reports errors that resubscribing will not cure: missing
// rights or credentials, a server without the feature, an argument the
// server refuses (such as a position it does not have).
func permanent(err error) bool {
	switch codeOf(err) {
	case esdbclient.ErrorCodeAccessDenied, esdbclient.ErrorCodeUnauthenticated,
		esdbclient.ErrorCodeUnsupportedFeature, esdbclient.ErrorCodeStreamDeleted:
		return true
	}
	return grpcCode(err) == codes.InvalidArgument
}

// refused reports a subscription that a node refused (after confirming
// it, as a real server does when the subscription requires the leader):
// not the leader, not ready, no leader known.
func refused(err error) bool {
	switch codeOf(err) {
	case esdbclient.ErrorCodeNotLeader, esdbclient.ErrorUnavailable:
		return true
	}
	return noLeaderInfo(err)
}

// nudge makes the client look for the leader. A subscription's errors
// never reach the client's reconnection (only the answers to other calls
// do), so a subscription a follower refuses with "not leader" would be
// made on that follower again and again. A read requiring the leader, of
// a stream that never exists, is answered "not leader" by a follower
// (the client then reconnects to the leader it names) and "not ready" by
// a node in an election (the client then discovers the cluster again).
//
// It waits at most a second: while the client is discovering anyway, the
// resubscription need not wait for the nudge.
func (s *Store) nudge(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(s.callTimeout, time.Second))
	defer cancel()
	ro := esdbclient.ReadStreamOptions{Direction: esdbclient.Forwards, From: esdbclient.Start{}}
	_ = s.do(ctx, func(ctx context.Context, c *esdbclient.Client) error {
		_, err := s.read(ctx, c, probeStream, ro, 1)
		return err
	})
}

// probeStream is a stream that never exists (the workspace of the nil id).
var probeStream = eventstore.WorkspaceStream(uuid.Nil)

// subscribeOptions are the server-side filter and start of a subscription.
func (s *Store) subscribeOptions(from esdbclient.AllPosition) esdbclient.SubscribeToAllOptions {
	return esdbclient.SubscribeToAllOptions{
		From:               from,
		Filter:             &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: s.filter},
		MaxSearchWindow:    searchWindow,
		CheckpointInterval: checkpointMultiplier,
	}
}

// subscribe starts a subscription that lives until subCtx ends, waiting
// for the server's confirmation at most the call timeout.
func (s *Store) subscribe(ctx, subCtx context.Context, from esdbclient.AllPosition) (*esdbclient.Subscription, error) {
	waitCtx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	var sub *esdbclient.Subscription
	err := s.do(waitCtx, func(_ context.Context, c *esdbclient.Client) error {
		var err error
		// subCtx, not the call's context: the subscription outlives the call.
		sub, err = c.SubscribeToAll(leaderOnly(subCtx), s.subscribeOptions(from))
		return err
	})
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// CheckReadAll confirms that the server lets this store subscribe to $all
// with its filter: it subscribes from the end and returns once the server
// confirms, retrying transient answers until ctx ends. A refusal comes back
// as ErrAccessDenied (or ErrUnauthenticated). Reading a single stream does
// not prove it: by default only $admins may read $all.
func (s *Store) CheckReadAll(ctx context.Context) error {
	wait := appendRetryPause
	for attempt := 1; ; attempt++ {
		subCtx, cancel := context.WithCancel(ctx)
		sub, err := s.subscribe(ctx, subCtx, esdbclient.End{})
		if err == nil {
			_ = sub.Close()
			cancel()
			return nil
		}
		cancel()
		if !transient(err) || ctx.Err() != nil {
			return fmt.Errorf("subscribe to $all (attempt %d): %w", attempt, explain(err))
		}
		if !pause(ctx, wait) {
			return fmt.Errorf("subscribe to $all (attempt %d, then %w): %w", attempt, ctx.Err(), err)
		}
		wait = min(wait*2, appendRetryMaxPause)
	}
}

// subscribeOnce runs one server subscription until it drops, ctx ends or h
// fails. It returns only after its receiving goroutine has ended.
func (s *Store) subscribeOnce(ctx context.Context, cur *cursor, size int, h eventstore.Handler) error {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// From the last event handed over, which comes again and is dropped as
	// already seen.
	var start esdbclient.AllPosition = esdbclient.Start{}
	if !cur.last.IsZero() {
		start = esdbclient.Position{Commit: cur.last.Commit, Prepare: cur.last.Prepare}
	}
	sub, err := s.subscribe(ctx, subCtx, start)
	if err != nil {
		return err
	}

	// The client's Recv blocks without a context; a goroutine feeds its
	// messages to a channel so that this one can also watch ctx. Closing the
	// subscription (cancel) ends Recv, and with it the goroutine. Recv
	// never waits on the client's connection loop.
	msgs := make(chan *esdbclient.SubscriptionEvent, size)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(msgs)
		for {
			var m *esdbclient.SubscriptionEvent
			if err := protect(func() error { m = sub.Recv(); return nil }); err != nil {
				m = &esdbclient.SubscriptionEvent{SubscriptionDropped: &esdbclient.SubscriptionDropped{Error: err}}
			}
			select {
			case msgs <- m:
			case <-subCtx.Done():
				return
			}
			if m.SubscriptionDropped != nil {
				return
			}
		}
	})
	defer func() {
		cancel()
		_ = sub.Close()
		wg.Wait()
	}()

	b := batcher{s: s, cur: cur, size: size, h: h}
	for {
		var m *esdbclient.SubscriptionEvent
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m = <-msgs:
		}
		// Take whatever else is already waiting, so that a catch-up hands
		// over full batches rather than one event at a time.
		for m != nil {
			if err := b.take(ctx, m); err != nil {
				return err
			}
			select {
			case m = <-msgs:
			default:
				m = nil
			}
		}
		if err := b.flush(ctx, false); err != nil {
			return err
		}
	}
}

// batcher gathers a subscription's messages into batches.
type batcher struct {
	s       *Store
	cur     *cursor
	size    int
	h       eventstore.Handler
	pending []eventstore.RecordedEvent
}

// take handles one message; a dropped subscription returns its error after
// the events received before it are handed over.
func (b *batcher) take(ctx context.Context, m *esdbclient.SubscriptionEvent) error {
	switch {
	case m == nil:
		return errors.New("subscription ended")
	case m.SubscriptionDropped != nil:
		if err := b.flush(ctx, false); err != nil {
			return err
		}
		if m.SubscriptionDropped.Error == nil {
			return errors.New("subscription dropped")
		}
		return m.SubscriptionDropped.Error
	case m.EventAppeared != nil:
		e := m.EventAppeared.Event
		if e == nil {
			return nil // a link to a deleted event; we subscribe without links
		}
		pos := domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare}
		if !b.cur.last.Less(pos) || (len(b.pending) > 0 && !b.pending[len(b.pending)-1].Position.Less(pos)) {
			return nil // already delivered
		}
		stream, ok := b.s.ours(e.StreamID)
		if !ok {
			return nil // the server filters; this guards against one that did not
		}
		r := b.s.recorded(stream, e)
		if b.s.ownCheck && !eventstore.IsOurRecord(r) {
			b.foreign(pos)
			return nil
		}
		b.pending = append(b.pending, r)
		if len(b.pending) >= b.size {
			return b.flush(ctx, false)
		}
	case m.CheckPointReached != nil:
		// The server has searched this far. Its position is not kept (see
		// SubscribeToAll): the subscription is alive, nothing more.
	case m.CaughtUp != nil:
		b.cur.live = true
		return b.flush(ctx, true)
	case m.FellBehind != nil:
		if err := b.flush(ctx, false); err != nil {
			return err
		}
		b.cur.live = false
	}
	return nil
}

// foreign notes a record of another application in a stream named like
// ours. Its stream name is not logged: another application's names may
// hold personal data.
func (b *batcher) foreign(pos domain.Position) {
	b.cur.foreign++
	if b.cur.foreign == 1 || b.cur.foreign%1000 == 0 {
		b.s.log.Warn("esdb: skipping records that usersd did not write, in streams named like its own (another application on the cluster?)",
			"position", pos.String(), "skipped", b.cur.foreign)
	}
}

// flush hands the pending events to the handler; with none, and force, it
// hands over an empty batch saying the subscription has caught up.
func (b *batcher) flush(ctx context.Context, force bool) error {
	if len(b.pending) == 0 && !force {
		return nil
	}
	batch := eventstore.Batch{Events: b.pending, Checkpoint: b.cur.last, CaughtUp: b.cur.live}
	if n := len(b.pending); n > 0 {
		batch.Checkpoint = b.pending[n-1].Position
	}
	if err := b.h(ctx, batch); err != nil {
		return handlerError{err}
	}
	b.cur.last = batch.Checkpoint
	b.cur.delivered++
	b.pending = nil
	return nil
}
