package messaging_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// failAfterPublish publishes through the outbox and then fails its first
// batch, as a crash after the publish and before the checkpoint would.
type failAfterPublish struct {
	*messaging.Outbox
	failed atomic.Bool
}

func (f *failAfterPublish) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	if err := f.Outbox.Apply(ctx, tx, events); err != nil {
		return err
	}
	if f.failed.CompareAndSwap(false, true) {
		return errors.New("crash between the publish and the checkpoint")
	}
	return nil
}

func TestOutboxPublishesWithTheCheckpointOrNotAtAll(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	r := newReplica(t, pool)
	defer r.store.Close()
	ws := r.workspace(t)
	r.invite(t, ws, 0, "ann@example.com, bob@example.com, cy@example.com")

	p := &failAfterPublish{Outbox: messaging.NewOutbox(commands.SystemClock{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = projections.NewRunner(pool, p, eventstore.Source{Store: r.store, Codec: testCodec}, projections.RunnerOptions{Logger: quiet, MinBackoff: 10 * time.Millisecond}).Run(ctx)
	}()
	eventually(t, "the outbox to hold the three e-mails", func() bool { return outbox(t, pool, "true") >= 3 })
	time.Sleep(100 * time.Millisecond) // a second publish would land meanwhile
	cancel()
	<-done
	if !p.failed.Load() {
		t.Fatal("the first batch did not fail: the test proves nothing")
	}
	if n := outbox(t, pool, "true"); n != 3 {
		t.Errorf("outbox holds %d messages, want 3: the failed batch's publish must roll back with it", n)
	}
	var ids int
	for part := range messaging.Partitions {
		ids += count(t, pool, `SELECT count(DISTINCT uuid) FROM watermill_`+messaging.PartitionTopic(part))
	}
	if ids != 3 {
		t.Errorf("%d distinct message ids, want 3", ids)
	}
}
