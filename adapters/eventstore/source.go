package eventstore

import (
	"context"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// sourceReadAhead is how many read pages may wait in the channel while
// one is decoded; the store may hold one more, read and waiting to be
// sent, so up to two lie beyond the one being decoded. That keeps the
// store's query and the decoding busy at once and bounds the memory held
// in undecoded pages.
const sourceReadAhead = 1

// Source lets projections follow a store: it decodes every event on the
// way, a batch at a time (one round trip to the keyring per batch).
//
// Reading and decoding overlap (projections.ReadAhead): the store reads
// the next page on its own goroutine while this one decodes (Codec.Decode
// spreads a big batch over the cores) and calls the handler. The batches
// reach the handler in order, one at a time, exactly as the store hands
// them over.
type Source struct {
	Store Store
	Codec *Codec
}

var _ projections.Source = Source{}

// Subscribe follows the store from a position; see projections.Source. An
// event that does not decode (a type from a newer version, say) stops the
// subscription with an error rather than being skipped.
func (s Source) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(ctx context.Context, b projections.Batch) error) error {
	return projections.ReadAhead(ctx, sourceReadAhead, func(ctx context.Context, emit func(context.Context, Batch) error) error {
		return s.Store.SubscribeToAll(ctx, from, SubscribeOptions{BatchSize: batchSize}, emit)
	}, func(ctx context.Context, b Batch) error {
		return s.handle(ctx, b, h)
	})
}

// handle decodes one page and hands it to h.
func (s Source) handle(ctx context.Context, b Batch, h func(ctx context.Context, b projections.Batch) error) error {
	events, err := s.Codec.Decode(ctx, b.Events...)
	if err != nil {
		return err
	}
	return h(ctx, projections.Batch{Events: events, Checkpoint: b.Checkpoint, CaughtUp: b.CaughtUp})
}
