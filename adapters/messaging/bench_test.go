package messaging_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// BenchmarkInvitationEmails measures invitations mailed per second end to
// end: invite commands (batches of up to 500 addresses) → events → the
// process manager's outbox → the watermill router → SMTP to an in-process
// server → the outcomes recorded as events. Beside it, in the same run,
// watermill-sql's raw publish → subscribe of as many messages of the same
// size on the same database: the floor of the queue alone. Goal: at least
// 1,000 invitations/s. b.N is the number of invitations.
func BenchmarkInvitationEmails(b *testing.B) {
	n := max(b.N, 100)
	raw := rawPubSub(b, n)
	mailed := endToEnd(b, n)
	b.ReportMetric(mailed, "invitations/s")
	b.ReportMetric(raw, "raw_msgs/s")
	b.ReportMetric(mailed/raw, "ratio")
	b.ReportMetric(0, "ns/op")
}

func endToEnd(b *testing.B, n int) float64 {
	pool, _ := pgtest.New(b)
	srv := smtptest.Start(b, smtptest.Options{})
	r := startReplica(b, pool, replicaOptions{smtpAddr: srv.Addr})
	ws := r.workspace(b)
	// Let the replica's runners reach the end of the history first.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	for i := 0; i < n; i += 500 {
		var batch []string
		for j := i; j < min(i+500, n); j++ {
			batch = append(batch, fmt.Sprintf("user%07d@example.com", j))
		}
		r.invite(b, ws, 0, strings.Join(batch, ","))
	}
	deadline := start.Add(5 * time.Minute)
	for eventCount(b, pool, domain.EventName(domain.InvitationEmailSent{})) < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d e-mails recorded after 5 minutes", eventCount(b, pool, domain.EventName(domain.InvitationEmailSent{})), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if got := len(srv.Messages()); got != n {
		b.Fatalf("the SMTP server received %d messages, want %d", got, n)
	}
	r.stop()
	return float64(n) / elapsed.Seconds()
}

// rawPubSub publishes n messages of the outbox's size in batches of 500
// and consumes them with watermill-sql's subscriber and an acknowledging
// handler, on a fresh database, and answers messages per second.
func rawPubSub(b *testing.B, n int) float64 {
	pool, _ := pgtest.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const topic = "bench_raw"
	pub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(pool), wsql.PublisherConfig{SchemaAdapter: wsql.DefaultPostgreSQLSchema{}, AutoInitializeSchema: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	sub := rawSubscriber(b, pool)
	defer sub.Close()
	if err := sub.SubscribeInitialize(topic); err != nil {
		b.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(fmt.Sprintf(`{"workspaceId":%q,"invitationId":%q,"userId":%q,"attempt":1,"sentBy":%q,"expiresAt":"2026-12-05T09:00:00Z","correlationId":"bench","causationId":%q}`,
		uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()))
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		for m := range msgs {
			m.Ack()
			if got.Add(1) == int64(n) {
				close(done)
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i += 500 {
		var batch []*message.Message
		for j := i; j < min(i+500, n); j++ {
			batch = append(batch, message.NewMessage(uuid.NewString(), payload))
		}
		if err := pub.Publish(topic, batch...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("consumed %d of %d raw messages after 5 minutes", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

func rawSubscriber(b *testing.B, pool *pgxpool.Pool) *wsql.Subscriber {
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		ConsumerGroup: "bench", PollInterval: 20 * time.Millisecond,
		SchemaAdapter: wsql.DefaultPostgreSQLSchema{}, OffsetsAdapter: wsql.DefaultPostgreSQLOffsetsAdapter{},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return sub
}
