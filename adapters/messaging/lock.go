package messaging

import (
	"context"
	"hash/fnv"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/pause"
)

// offsetsAdapter is watermill-sql's PostgreSQL offsets adapter without its
// row lock. The default one reads the consumer group's offset FOR UPDATE, so
// that subscribers of several replicas take turns; a row lock gives the
// subscriber's transaction an id, and that transaction stays open while its
// batch is handled (retries and their backoff included). The event store's
// subscriptions read only below the oldest running transaction id, so every
// projection would wait for the mailer. Instead one replica at a time mails,
// holding an advisory lock (MailerLock), and reads offsets without a lock:
// its transaction takes an id only to write the acknowledgement, just
// before it commits (HoldLock).
type offsetsAdapter struct {
	wsql.DefaultPostgreSQLOffsetsAdapter
}

func (a offsetsAdapter) NextOffsetQuery(p wsql.NextOffsetQueryParams) (wsql.Query, error) {
	return wsql.Query{
		Query: `SELECT offset_acked, last_processed_transaction_id FROM ` + a.MessagesOffsetsTable(p.Topic) + ` WHERE consumer_group = $1`,
		Args:  []any{p.ConsumerGroup},
	}, nil
}

// MailerLock names the advisory lock of the replica that mails.
const MailerLock = "usersd invitation mailer"

// lockKey is the advisory lock named name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// HoldLock waits until this replica holds the advisory lock named name
// (MailerLock, the webhook sender's), on a connection of its own, telling
// standby once if another replica holds it, and answers it with a context
// that ends if the connection (and with it the lock) is lost. release ends
// both.
func HoldLock(ctx context.Context, pool *pgxpool.Pool, name string, standby func()) (context.Context, func(), error) {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = name + " lock"
	var conn *pgx.Conn
	told := false
	for {
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil && ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			conn = c
		}
		if conn != nil {
			var ok bool
			err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(name)).Scan(&ok)
			if err == nil && ok {
				break
			}
			if err != nil {
				_ = conn.Close(context.WithoutCancel(ctx))
				conn = nil
			} else if !told {
				standby()
				told = true
			}
		}
		if err := pause.For(ctx, 500*time.Millisecond); err != nil {
			if conn != nil {
				_ = conn.Close(context.WithoutCancel(ctx))
			}
			return nil, nil, err
		}
	}
	held, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for pause.For(held, 2*time.Second) == nil {
			pctx, pcancel := context.WithTimeout(held, 5*time.Second)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && held.Err() == nil {
				cancel() // the lock went with the connection
				return
			}
		}
	}()
	release := func() {
		cancel()
		<-stopped
		_ = conn.Close(context.Background()) // ends the lock too
	}
	return held, release, nil
}
