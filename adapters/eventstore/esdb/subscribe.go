package esdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// handlerError carries the handler's error out of a subscription, so that
// it ends SubscribeToAll instead of causing a resubscription.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// cursor is how far a subscription has got, across resubscriptions.
type cursor struct {
	// checkpoint is the position handed to the handler last.
	checkpoint domain.Position
	// lastEvent is the position of the last event handed over. Events at or
	// before it are dropped, so that nothing is delivered twice even if a
	// server resent the event at the resubscription's start.
	lastEvent domain.Position
	// live is true once this subscription has caught up (and not fallen
	// behind since): every batch then reaches the end of the stored events.
	live bool
	// delivered counts batches handed over since the last resubscription.
	delivered int
}

// SubscribeToAll implements eventstore.Store: a catch-up subscription to
// $all, filtered on the server by this store's stream prefixes (which
// leaves out system streams). When the subscription drops (node restart,
// leader change, network), it resubscribes from the last checkpoint handed
// to h, after a pause that doubles from the minimum to the maximum backoff
// while resubscriptions fail.
func (s *Store) SubscribeToAll(ctx context.Context, from domain.Position, opts eventstore.SubscribeOptions, h eventstore.Handler) error {
	size := opts.BatchSize
	if size <= 0 {
		size = defaultBatchSize
	}
	cur := &cursor{checkpoint: from, lastEvent: from}
	pause := s.minBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		client, err := s.conn()
		if err != nil {
			return fmt.Errorf("subscribe to $all: %w", err)
		}
		cur.live, cur.delivered = false, 0
		err = s.subscribeOnce(ctx, client, cur, size, h)
		var herr handlerError
		switch {
		case errors.As(err, &herr):
			return herr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case permanent(err):
			return fmt.Errorf("subscribe to $all from %v: %w", cur.checkpoint, err)
		case codeOf(err) == esdbclient.ErrorCodeConnectionClosed && !s.replace(client):
			return fmt.Errorf("subscribe to $all from %v: %w", cur.checkpoint, err)
		}
		if cur.delivered > 0 {
			pause = s.minBackoff
		}
		s.log.Warn("esdb: subscription to $all dropped; resubscribing",
			"from", cur.checkpoint.String(), "after", pause, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, s.maxBackoff)
	}
}

// permanent reports errors that resubscribing will not cure: missing
// rights or credentials, a server without the feature.
func permanent(err error) bool {
	switch codeOf(err) {
	case esdbclient.ErrorCodeAccessDenied, esdbclient.ErrorCodeUnauthenticated,
		esdbclient.ErrorCodeUnsupportedFeature:
		return true
	}
	return false
}

// subscribeOnce runs one server subscription until it drops, ctx ends or h
// fails. It returns only after its receiving goroutine has ended.
func (s *Store) subscribeOnce(ctx context.Context, client *esdbclient.Client, cur *cursor, size int, h eventstore.Handler) error {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// From the last event handed over, not from the last checkpoint
	// message: some server versions sent filtered checkpoints beyond
	// events not yet delivered (KurrentDB #4990, #4023), and resuming past
	// them would skip those events. The event itself comes again and is
	// dropped as already seen.
	var start esdbclient.AllPosition = esdbclient.Start{}
	if !cur.lastEvent.IsZero() {
		start = esdbclient.Position{Commit: cur.lastEvent.Commit, Prepare: cur.lastEvent.Prepare}
	}
	sub, err := client.SubscribeToAll(subCtx, esdbclient.SubscribeToAllOptions{
		From:               start,
		Filter:             &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: s.filter},
		MaxSearchWindow:    searchWindow,
		CheckpointInterval: checkpointMultiplier,
	})
	if err != nil {
		return err
	}

	// The client's Recv blocks without a context; a goroutine feeds its
	// messages to a channel so that this one can also watch ctx. Closing the
	// subscription (cancel) ends Recv, and with it the goroutine.
	msgs := make(chan *esdbclient.SubscriptionEvent, size)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(msgs)
		for {
			m := sub.Recv()
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
	// moved is set when a checkpoint message moved the checkpoint past what
	// the handler has seen.
	moved domain.Position
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
		if !b.cur.lastEvent.Less(pos) || (len(b.pending) > 0 && !b.pending[len(b.pending)-1].Position.Less(pos)) {
			return nil // already delivered
		}
		stream, ok := b.s.ours(e.StreamID)
		if !ok {
			// The server filters; this guards against one that did not.
			b.checkpointAt(pos)
			return nil
		}
		b.pending = append(b.pending, b.s.recorded(stream, e))
		if len(b.pending) >= b.size {
			return b.flush(ctx, false)
		}
	case m.CheckPointReached != nil:
		// Events before a checkpoint go first, with their own positions as
		// the batch checkpoint.
		if err := b.flush(ctx, false); err != nil {
			return err
		}
		b.checkpointAt(domain.Position{Commit: m.CheckPointReached.Commit, Prepare: m.CheckPointReached.Prepare})
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

// checkpointAt notes a position the server has passed; it never moves the
// checkpoint back (servers may report one behind the last event sent).
func (b *batcher) checkpointAt(p domain.Position) {
	if b.cur.checkpoint.Less(p) && b.moved.Less(p) {
		b.moved = p
	}
}

// flush hands the pending events to the handler; with none, it hands over
// a moved checkpoint, or (force) an empty batch saying the subscription
// has caught up.
func (b *batcher) flush(ctx context.Context, force bool) error {
	batch := eventstore.Batch{Events: b.pending, Checkpoint: b.cur.checkpoint, CaughtUp: b.cur.live}
	switch {
	case len(b.pending) > 0:
		batch.Checkpoint = b.pending[len(b.pending)-1].Position
	case b.cur.checkpoint.Less(b.moved):
		batch.Checkpoint = b.moved
	case !force:
		return nil
	}
	if err := b.h(ctx, batch); err != nil {
		return handlerError{err}
	}
	if n := len(b.pending); n > 0 {
		b.cur.lastEvent = b.pending[n-1].Position
	}
	b.cur.checkpoint = batch.Checkpoint
	b.cur.delivered++
	b.pending = nil
	return nil
}
