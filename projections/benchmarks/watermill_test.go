package benchmarks_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// The watermill baseline of the rebuild: the same history as messages of
// one watermill-sql topic (PostgreSQL schema adapter, offsets per consumer
// group), read by watermill-sql's subscriber in batches of 1,000 and
// handled by the projection's own Apply, one message per transaction as a
// watermill handler acknowledges one message at a time.
const (
	// envWatermillEvents caps the events the watermill baseline replays
	// (default 100,000, at most the history): at its pace the whole
	// million would take longer than the rest of the run. It replays the
	// start of the same history, where the tables are smaller, which
	// favours it.
	envWatermillEvents     = "USERSD_BENCH_WATERMILL_EVENTS"
	defaultWatermillEvents = 100_000
	watermillTopic         = "usersd_events"
	watermillBatch         = 1000
	rebuildGoalWatermill   = 5.0 // rebuild rate / watermill rate
)

// watermillGroups numbers the consumer groups, one per replay.
var watermillGroups atomic.Int64

// seedWatermill copies the first n events of the history into the topic's
// messages table, in global order, with what a handler needs to rebuild
// each event in the message's metadata (its payload is the event's data).
func seedWatermill(b *testing.B, ctx context.Context, pool *pgxpool.Pool, n int) {
	schema := wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: watermillBatch}
	offsets := wsql.DefaultPostgreSQLOffsetsAdapter{}
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{SchemaAdapter: schema, OffsetsAdapter: offsets}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize(watermillTopic); err != nil {
		b.Fatalf("watermill schema: %v", err)
	}
	_ = sub.Close()
	_, err = pool.Exec(ctx, `INSERT INTO `+schema.MessagesTable(watermillTopic)+` (uuid, payload, metadata, transaction_id)
		SELECT event_id::text, data::json, json_build_object(
			'type', type, 'stream_id', stream_id, 'revision', revision::text,
			'commit', tx_id::text, 'prepare', position::text,
			'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'metadata', metadata::text),
			pg_current_xact_id()
		FROM (SELECT * FROM events ORDER BY tx_id, position LIMIT $1) e
		ORDER BY tx_id, position`, n)
	if err != nil {
		b.Fatalf("seed the watermill topic: %v", err)
	}
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+schema.MessagesTable(watermillTopic)); err != nil {
		b.Fatal(err)
	}
}

// watermillReplay has watermill-sql's subscriber deliver the topic's n
// messages to p's Apply, one transaction per message, into fresh tables of
// a schema of their own, and answers how long it took.
func watermillReplay(b *testing.B, ctx context.Context, pool *pgxpool.Pool, p projections.ReadModel, n int) time.Duration {
	target := "watermill_" + p.Name()
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{target}.Sanitize()+" CASCADE"); err != nil {
		b.Fatal(err)
	}
	pgtest.CreateTables(b, pool, target, p.Schema())
	defer func() {
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{target}.Sanitize()+" CASCADE")
	}()

	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		// A group of its own reads the topic from its start.
		ConsumerGroup:  fmt.Sprintf("rebuild_%s_%d", p.Name(), watermillGroups.Add(1)),
		SchemaAdapter:  wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: watermillBatch},
		OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
		PollInterval:   10 * time.Millisecond,
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	msgs, err := sub.Subscribe(sctx, watermillTopic)
	if err != nil {
		b.Fatal(err)
	}
	search := "SET LOCAL search_path TO " + pgx.Identifier{target}.Sanitize() + ", public"
	for got := 0; got < n; got++ {
		var msg *message.Message
		select {
		case msg = <-msgs:
		case <-time.After(time.Minute):
			b.Fatalf("watermill delivered %d messages of %d, then nothing for a minute", got, n)
		}
		e, err := watermillEvent(msg)
		if err != nil {
			b.Fatalf("message %d: %v", got, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, sql := range []string{"SET LOCAL synchronous_commit = off", search} {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return err
				}
			}
			return p.Apply(ctx, tx, []domain.RecordedEvent{e})
		})
		if err != nil {
			b.Fatalf("apply message %d: %v", got, err)
		}
		msg.Ack()
	}
	return time.Since(start)
}

// watermillEvent rebuilds the stored event a message carries and decodes
// it, as eventstore.Source does.
func watermillEvent(msg *message.Message) (domain.RecordedEvent, error) {
	md := msg.Metadata
	id, err := uuid.Parse(msg.UUID)
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	var nums [3]uint64
	for i, k := range []string{"revision", "commit", "prepare"} {
		if nums[i], err = strconv.ParseUint(md.Get(k), 10, 64); err != nil {
			return domain.RecordedEvent{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	created, err := time.Parse(time.RFC3339Nano, md.Get("created_at"))
	if err != nil {
		return domain.RecordedEvent{}, err
	}
	if md.Get("type") == "" {
		return domain.RecordedEvent{}, errors.New("no event type")
	}
	raw := eventstore.RecordedEvent{
		ID: id, StreamID: md.Get("stream_id"), Revision: nums[0], Type: md.Get("type"),
		Position: domain.Position{Commit: nums[1], Prepare: nums[2]},
		Data:     msg.Payload, Metadata: []byte(md.Get("metadata")), CreatedAt: created,
	}
	return testCodec.DecodeOne(context.Background(), raw)
}
