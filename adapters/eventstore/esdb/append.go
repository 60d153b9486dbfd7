package esdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// appendRetryPause is the first pause before an append is sent again; it
// doubles with each try, leaving a leader election time to finish.
const appendRetryPause = 50 * time.Millisecond

// Append implements eventstore.Store.
//
// When the outcome of an append is unknown (the node went away, it was no
// longer the leader, no answer in time), Append sends the very same append
// again, same ids and same expected revision, up to the retries allowed:
// EventStoreDB recognises the ids and answers the first result instead of
// storing the events twice.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
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

	pause := appendRetryPause
	for attempt := 0; ; attempt++ {
		client, err := s.conn()
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		wr, err := client.AppendToStream(ctx, s.stored(stream), opts, data...)
		if err == nil {
			return s.result(ctx, stream, wr)
		}
		if codeOf(err) == esdbclient.ErrorCodeWrongExpectedVersion {
			return eventstore.AppendResult{}, wrongVersion(stream, expected, err)
		}
		retry := transient(err) ||
			(codeOf(err) == esdbclient.ErrorCodeConnectionClosed && s.replace(client))
		if !retry || attempt >= s.appendRetries || ctx.Err() != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s (attempt %d): %w", stream, attempt+1, err)
		}
		select {
		case <-ctx.Done():
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, ctx.Err())
		case <-time.After(pause):
		}
		pause *= 2
	}
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
