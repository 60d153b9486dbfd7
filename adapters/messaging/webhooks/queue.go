package webhooks

import (
	"context"
	stdsql "database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// The queue: watermill-sql's PostgreSQL queue schema over one table
// (watermill_webhook_deliveries, migration 00016), a row per delivery,
// deleted once handled. Each webhook's deliveries go to one of Partitions
// partitions, kept in its messages' metadata; each partition has a
// subscriber of its own, which hands out its messages one at a time in
// the order they were queued, and the next only once the one before is
// delivered or given up: that is the order of a webhook's deliveries.
const (
	// Topic names the queue's table: watermill_<topic>.
	Topic = "webhook_deliveries"
	// PoisonTopic keeps the deliveries that failed after the last try.
	PoisonTopic = "webhook_deliveries_poison"
	// Partitions is how many subscribers deliver side by side. A webhook
	// whose receiver fails holds up the others of its partition while its
	// delivery is retried. Never change it while deliveries are queued:
	// those of a partition that no longer exists would wait forever.
	Partitions = 16
	// queueBatch is how many messages a subscriber reads at a time; a crash
	// delivers at most that many of a partition a second time.
	queueBatch = 50
)

// Metadata keys of a queued delivery.
const (
	metaPartition = "partition"
	metaWebhook   = "webhook_id"
)

// partition is where webhook's deliveries go.
func partition(webhook uuid.UUID) int {
	return int(binary.BigEndian.Uint32(webhook[12:]) % Partitions)
}

// queueSchema is watermill-sql's queue schema reading one partition.
//
// Its SELECT takes no row lock (the schema's takes FOR UPDATE): a row lock
// gives the subscriber's transaction an id, and that transaction stays
// open while its batch is delivered, retries and their backoff included;
// the event store's subscriptions read only below the oldest running
// transaction id, so every projection would wait for a receiver that
// fails. One replica at a time sends (an advisory lock) and one
// subscriber reads each partition, so no lock is needed. It runs in READ
// COMMITTED: the acknowledgement deletes the rows, which a removal of
// their webhook may have deleted first.
type queueSchema struct {
	wsql.PostgreSQLQueueSchema
	partition int
}

func newQueueSchema(p int) queueSchema {
	return queueSchema{PostgreSQLQueueSchema: wsql.PostgreSQLQueueSchema{SubscribeBatchSize: queueBatch}, partition: p}
}

func (s queueSchema) SelectQuery(params wsql.SelectQueryParams) (wsql.Query, error) {
	return wsql.Query{
		Query: `SELECT "offset", uuid, payload, metadata FROM ` + s.MessagesTable(params.Topic) + `
			WHERE NOT acked AND (metadata->>'` + metaPartition + `')::int = $1
			ORDER BY "offset" LIMIT ` + strconv.Itoa(queueBatch),
		Args: []any{s.partition},
	}, nil
}

func (queueSchema) SubscribeIsolationLevel() stdsql.IsolationLevel { return stdsql.LevelReadCommitted }

// InsertQuery inserts a batch of messages with one statement whatever their
// number (arrays, not a row of parameters per message), which the
// connection prepares once.
func (s queueSchema) InsertQuery(params wsql.InsertQueryParams) (wsql.Query, error) {
	n := len(params.Msgs)
	ids, payloads, metadata := make([]string, n), make([]string, n), make([]string, n)
	for i, m := range params.Msgs {
		meta, err := json.Marshal(m.Metadata)
		if err != nil {
			return wsql.Query{}, fmt.Errorf("metadata of message %s: %w", m.UUID, err)
		}
		ids[i], payloads[i], metadata[i] = m.UUID, string(m.Payload), string(meta)
	}
	return wsql.Query{
		// In the batch's order: the offsets are the deliveries' order.
		Query: `INSERT INTO ` + s.MessagesTable(params.Topic) + ` (uuid, payload, metadata)
			SELECT m.uuid, m.payload, m.metadata
			FROM unnest($1::varchar[], $2::json[], $3::json[]) WITH ORDINALITY AS m(uuid, payload, metadata, n) ORDER BY m.n`,
		Args: []any{ids, payloads, metadata},
	}, nil
}

// offsets acknowledges a batch by deleting its rows.
var offsets = wsql.PostgreSQLQueueOffsetsAdapter{DeleteOnAck: true}

// queued is a delivery as the queue holds it: the event as the store keeps
// it, its personal values sealed, opened only when it is sent (an erased
// person's values are then empty, as everywhere).
type queued struct {
	Delivery   uuid.UUID       `json:"deliveryId"`
	Webhook    uuid.UUID       `json:"webhookId"`
	Workspace  uuid.UUID       `json:"workspaceId"`
	EventID    uuid.UUID       `json:"eventId"`
	Type       string          `json:"type"`
	Version    int             `json:"version"`
	Position   string          `json:"position"`
	OccurredAt time.Time       `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
}

func newMessage(d projwebhooks.Delivery) (*message.Message, error) {
	e := d.Event
	stored := e.Stored.Event
	if stored == nil {
		stored = e.Event
	}
	data, err := domain.EncodeEvent(stored)
	if err != nil {
		return nil, err
	}
	version := e.Stored.Metadata.SchemaVersion
	if version == 0 {
		version = domain.SchemaVersion
	}
	payload, err := json.Marshal(queued{
		Delivery: d.ID, Webhook: d.WebhookID, Workspace: d.WorkspaceID, EventID: e.Metadata.EventID,
		Type: domain.EventName(stored), Version: version, Position: e.Position.String(),
		OccurredAt: e.Metadata.OccurredAt, Data: data,
	})
	if err != nil {
		return nil, err
	}
	m := message.NewMessage(d.ID.String(), payload)
	m.Metadata.Set(metaPartition, strconv.Itoa(partition(d.WebhookID)))
	m.Metadata.Set(metaWebhook, d.WebhookID.String())
	return m, nil
}

// publishBatch bounds the messages of one INSERT (3 parameters each).
const publishBatch = 1000

// enqueue queues deliveries on tx: they are sent once tx commits, and not
// at all if it does not.
func enqueue(ctx context.Context, tx pgx.Tx, deliveries []projwebhooks.Delivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: queueSchema{}}, nil)
	if err != nil {
		return fmt.Errorf("webhook publisher: %w", err)
	}
	msgs := make([]*message.Message, 0, min(len(deliveries), publishBatch))
	for i, d := range deliveries {
		m, err := newMessage(d)
		if err != nil {
			return fmt.Errorf("delivery %s: %w", d.ID, err)
		}
		m.SetContext(ctx)
		msgs = append(msgs, m)
		if len(msgs) == publishBatch || i == len(deliveries)-1 {
			if err := pub.Publish(Topic, msgs...); err != nil {
				return fmt.Errorf("queue %d webhook deliveries: %w", len(msgs), err)
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// unqueue drops the queued deliveries of removed webhooks, on tx.
func unqueue(ctx context.Context, tx pgx.Tx, removed []uuid.UUID) error {
	if len(removed) == 0 {
		return nil
	}
	ids := make([]string, len(removed))
	for i, id := range removed {
		ids[i] = id.String()
	}
	if _, err := tx.Exec(ctx, `DELETE FROM watermill_`+Topic+` WHERE metadata->>'`+metaWebhook+`' = ANY($1)`, ids); err != nil {
		return fmt.Errorf("drop the deliveries of %d removed webhooks: %w", len(removed), err)
	}
	return nil
}

// Dispatcher is the webhooks' process manager as a projection: a
// projections.Runner feeds it (one replica at a time), and Apply applies
// the batch to the webhooks' state (projections/webhooks: subscriptions,
// the log's pending rows, replays) and queues its deliveries through
// watermill-sql on the runner's own transaction, the one that also moves
// the checkpoint: either both commit or neither does, so a crash loses no
// delivery. It is no read model: never rebuild it (a replay would deliver
// every event again).
type Dispatcher struct{}

var _ projections.Projection = Dispatcher{}

func (Dispatcher) Name() string { return projwebhooks.Name }

func (Dispatcher) Apply(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	plan, err := projwebhooks.Apply(ctx, tx, events)
	if err != nil {
		return err
	}
	if err := unqueue(ctx, tx, plan.Removed); err != nil {
		return err
	}
	return enqueue(ctx, tx, plan.Deliveries)
}
