package eventstore

import (
	"context"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Source lets projections follow a store: it decodes every event on the
// way, a batch at a time (one round trip to the keyring per batch).
type Source struct {
	Store Store
	Codec *Codec
}

var _ projections.Source = Source{}

// Subscribe follows the store from a position; see projections.Source. An
// event that does not decode (a type from a newer version, say) stops the
// subscription with an error rather than being skipped.
func (s Source) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(ctx context.Context, b projections.Batch) error) error {
	return s.Store.SubscribeToAll(ctx, from, SubscribeOptions{BatchSize: batchSize}, func(ctx context.Context, b Batch) error {
		events, err := s.Codec.Decode(ctx, b.Events...)
		if err != nil {
			return err
		}
		return h(ctx, projections.Batch{Events: events, Checkpoint: b.Checkpoint, CaughtUp: b.CaughtUp})
	})
}
