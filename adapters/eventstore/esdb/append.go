package esdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"golang.org/x/sync/errgroup"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// appendRetryPause is the first pause before an append is sent again; it
// doubles with each try up to appendRetryMaxPause, leaving a leader
// election time to finish within the call's deadline.
const (
	appendRetryPause    = 50 * time.Millisecond
	appendRetryMaxPause = time.Second
)

// Append implements eventstore.Store.
//
// When the outcome of an append is unknown (the node went away or is not
// ready, it was no longer the leader, an election is on, the server timed
// out), Append sends the very same append again, same ids and same
// expected revision, until the retries allowed or the deadline run out
// (the store's call timeout when ctx has none): EventStoreDB recognises
// the ids and answers the first result instead of storing the events
// twice. Every append requires the leader.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	opts := esdbclient.AppendToStreamOptions{ExpectedRevision: expectedOf(expected)}
	data := make([]esdbclient.EventData, len(events))
	for i, e := range events {
		data[i] = esdbclient.EventData{
			EventID:     e.ID,
			EventType:   e.Type,
			ContentType: esdbclient.ContentTypeJson,
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
	}

	wait := appendRetryPause
	for attempt := 0; ; attempt++ {
		var wr *esdbclient.WriteResult
		err := s.do(ctx, func(ctx context.Context, c *esdbclient.Client) error {
			var err error
			wr, err = c.AppendToStream(ctx, s.stored(stream), opts, data...)
			return err
		})
		if err == nil {
			return s.result(ctx, stream, wr)
		}
		if codeOf(err) == esdbclient.ErrorCodeWrongExpectedVersion {
			return eventstore.AppendResult{}, wrongVersion(stream, expected, err)
		}
		if !transient(err) || attempt >= s.appendRetries || ctx.Err() != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s (attempt %d): %w", stream, attempt+1, givenUp(err))
		}
		if !pause(ctx, wait) {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s (attempt %d, then %w): %w", stream, attempt+1, ctx.Err(), givenUp(err))
		}
		wait = min(wait*2, appendRetryMaxPause)
	}
}

// defaultStartParallel bounds the appends StartStreams runs at once.
const defaultStartParallel = 32

var _ eventstore.StreamStarter = (*Store)(nil)

// StartStreams implements eventstore.StreamStarter. The v4 client has no
// append to several streams in one request, so each stream costs its own
// append ("no stream" expected, requiring the leader); they go up to 32 at
// once over the client's one connection, where the leader commits them
// together. A batch of n new streams thus takes n round trips but about
// n/32 round-trip times. A stream someone else started answers a wrong
// expected version: not started. A stream whose first event is this very
// event (a retry of a call whose answer was lost) is recognised by the
// event's id and reported started, which is as true.
func (s *Store) StartStreams(ctx context.Context, starts []eventstore.StreamStart) ([]bool, error) {
	if err := eventstore.CheckStarts(starts); err != nil {
		return nil, err
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	started := make([]bool, len(starts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.parallel)
	for i, st := range starts {
		g.Go(func() error {
			_, err := s.Append(gctx, st.Stream, eventstore.NoStream{}, st.Event)
			switch {
			case err == nil:
				started[i] = true
			case !errors.Is(err, eventstore.ErrWrongExpectedRevision):
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("start %d streams: %w", len(starts), err)
	}
	return started, nil
}

// wrongVersion maps the server's refusal. With expected revision Any the
// server refuses only an append that repeats part of an earlier one (its
// first ids stored, the rest not, or not in that order): that is not a
// concurrency conflict to retry but a misuse of ids.
func wrongVersion(stream string, expected eventstore.ExpectedRevision, err error) error {
	if _, ok := expected.(eventstore.Any); ok {
		return fmt.Errorf("append to %s: %w (%v)", stream, eventstore.ErrIdempotency, err)
	}
	return fmt.Errorf("append to %s: expected %v: %w (%v)", stream, expected, eventstore.ErrWrongExpectedRevision, err)
}

// result turns the client's answer into the port's. EventStoreDB answers a
// repeated append without a position; the position is then read from the
// stream, so that a retry answers exactly what the first try would have.
func (s *Store) result(ctx context.Context, stream string, wr *esdbclient.WriteResult) (eventstore.AppendResult, error) {
	r := eventstore.AppendResult{
		NextExpectedRevision: wr.NextExpectedVersion,
		Position:             domain.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition},
	}
	if !r.Position.IsZero() {
		return r, nil
	}
	last, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{From: r.NextExpectedRevision, Backwards: true, Max: 1})
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: stored, but reading its position: %w", stream, err)
	}
	if len(last) != 1 || last[0].Revision != r.NextExpectedRevision {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: stored, but revision %d is not readable", stream, r.NextExpectedRevision)
	}
	r.Position = last[0].Position
	return r, nil
}

func expectedOf(e eventstore.ExpectedRevision) esdbclient.ExpectedRevision {
	switch e := e.(type) {
	case eventstore.NoStream:
		return esdbclient.NoStream{}
	case eventstore.StreamExists:
		return esdbclient.StreamExists{}
	case eventstore.Revision:
		return esdbclient.Revision(uint64(e))
	}
	return esdbclient.Any{}
}

// errClosed tells callers that the store was closed.
var errClosed = errors.New("esdb store closed")
