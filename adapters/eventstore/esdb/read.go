package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Max < 0 {
		return nil, fmt.Errorf("read %s: negative Max %d", stream, opts.Max)
	}
	count := uint64(math.MaxUint64)
	if opts.Max > 0 {
		count = uint64(opts.Max)
	}
	ro := esdbclient.ReadStreamOptions{Direction: esdbclient.Forwards, From: esdbclient.Revision(opts.From)}
	switch {
	case opts.Backwards && opts.FromEnd:
		ro.Direction, ro.From = esdbclient.Backwards, esdbclient.End{}
	case opts.Backwards:
		ro.Direction = esdbclient.Backwards
	case opts.FromEnd:
		ro.From = esdbclient.End{} // forwards from the end: nothing, if the stream exists
	}

	ctx, cancel := s.bounded(ctx)
	defer cancel()
	wait := appendRetryPause
	for attempt := 0; ; attempt++ {
		var out []eventstore.RecordedEvent
		err := s.do(ctx, func(ctx context.Context, c *esdbclient.Client) error {
			var err error
			out, err = s.read(ctx, c, stream, ro, count)
			return err
		})
		if err == nil || errors.Is(err, eventstore.ErrStreamNotFound) {
			return out, err
		}
		// A read has no side effect: it is always safe to try again.
		if !transient(err) || attempt >= s.appendRetries || ctx.Err() != nil {
			return nil, fmt.Errorf("read %s (attempt %d): %w", stream, attempt+1, givenUp(err))
		}
		if !pause(ctx, wait) {
			return nil, fmt.Errorf("read %s (attempt %d, then %w): %w", stream, attempt+1, ctx.Err(), givenUp(err))
		}
		wait = min(wait*2, appendRetryMaxPause)
	}
}

// read reads a stream on one client, from the leader. It runs inside
// Store.do: the client's ReadStream.Recv may block on the client's
// connection loop when it fails.
func (s *Store) read(ctx context.Context, client *esdbclient.Client, stream string, ro esdbclient.ReadStreamOptions, count uint64) ([]eventstore.RecordedEvent, error) {
	rs, err := client.ReadStream(ctx, s.stored(stream), ro, count)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []eventstore.RecordedEvent{}
	for {
		ev, err := rs.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return out, nil
		case codeOf(err) == esdbclient.ErrorCodeResourceNotFound:
			return nil, fmt.Errorf("read %s: %w", stream, eventstore.ErrStreamNotFound)
		case err != nil:
			return nil, err
		case ev.Event == nil:
			continue // a link to a deleted event; we write no links
		}
		out = append(out, s.recorded(stream, ev.Event))
	}
}

// recorded converts an event read back; stream is its name without the
// namespace.
func (s *Store) recorded(stream string, e *esdbclient.RecordedEvent) eventstore.RecordedEvent {
	r := eventstore.RecordedEvent{
		ID:        e.EventID,
		StreamID:  stream,
		Revision:  e.EventNumber,
		Position:  domain.Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare},
		Type:      e.EventType,
		Data:      e.Data,
		Metadata:  e.UserMetadata,
		CreatedAt: e.CreatedDate,
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil // the client sends "no metadata" as empty bytes
	}
	return r
}
