package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usersd/usersd/adapters/broker"
	"github.com/usersd/usersd/adapters/broker/natstest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/feed"
)

// BenchmarkJetStreamPublish measures how fast usersd publishes the history
// to JetStream: a projections.Runner feeding the Publisher from a history in
// memory (batches of broker.BatchSize as in serve, each line encoded and published, every
// acknowledgement awaited, then the checkpoint committed in PostgreSQL),
// beside the floor: a bare nats.go loop publishing the very same messages
// (subject, Nats-Msg-Id, body) with PublishMsgAsync and one wait at the end.
// Each side publishes into a fresh stream of the same settings, interleaved
// A B B A. b.N is the number of events (at least 50,000). Goal: usersd ≥
// 0.5× the bare loop.
func BenchmarkJetStreamPublish(b *testing.B) {
	n := max(b.N, 50_000)
	events := history(n)
	pool, _ := pgtest.New(b)
	var usersd, bare time.Duration
	for _, side := range []string{"usersd", "bare", "bare", "usersd"} {
		s := natstest.New(b)
		createStream(b, s)
		if side == "usersd" {
			usersd += runPublisher(b, pool, s, events)
		} else {
			bare += bareLoop(b, s, events)
		}
		if got, err := s.Count(context.Background()); err != nil || got != uint64(n) {
			b.Fatalf("%s: the stream holds %d messages (%v), want %d", side, got, err, n)
		}
	}
	usersdRate := float64(2*n) / usersd.Seconds()
	bareRate := float64(2*n) / bare.Seconds()
	b.ReportMetric(usersdRate, "events/s")
	b.ReportMetric(bareRate, "bare-msgs/s")
	b.ReportMetric(usersdRate/bareRate, "ratio")
	b.ReportMetric(0, "ns/op")
	b.Logf("SUMMARY: %d events: usersd %.0f events/s, bare nats.go loop %.0f msgs/s, ratio %.2f (goal ≥ 0.5: %v)",
		n, usersdRate, bareRate, usersdRate/bareRate, usersdRate/bareRate >= 0.5)
}

// createStream makes the stream as the publisher would, so that neither
// side's time includes it.
func createStream(b *testing.B, s *natstest.Space) {
	b.Helper()
	_, err := s.JetStream().CreateStream(context.Background(), jetstream.StreamConfig{
		Name: s.Stream, Subjects: []string{s.SubjectPrefix + ".>"}, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		Storage: jetstream.FileStorage, MaxAge: broker.DefaultMaxAge, MaxMsgs: -1, MaxBytes: -1, Duplicates: broker.DefaultDuplicates, Replicas: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
}

// runPublisher runs a runner with a fresh checkpoint until it has published
// every event, and answers how long that took.
func runPublisher(b *testing.B, pool *pgxpool.Pool, s *natstest.Space, events []domain.RecordedEvent) time.Duration {
	b.Helper()
	if _, err := pool.Exec(context.Background(), `DELETE FROM projection_checkpoints WHERE name = $1`, broker.Name); err != nil {
		b.Fatal(err)
	}
	p, err := broker.New(broker.Options{URL: s.URL, Stream: s.Stream, SubjectPrefix: s.SubjectPrefix})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	last := events[len(events)-1].Position
	done := make(chan struct{})
	r := projections.NewRunner(pool, p, projections.SliceSource(events), projections.RunnerOptions{
		BatchSize: broker.BatchSize,
		OnProgress: func(pr projections.Progress) {
			if pr.Checkpoint == last {
				select {
				case <-done:
				default:
					close(done)
				}
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	start := time.Now()
	go func() { defer close(stopped); _ = r.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("the publisher did not publish the history within 5 minutes")
	}
	took := time.Since(start)
	cancel()
	<-stopped
	return took
}

// bareLoop publishes the same messages as the publisher, built beforehand,
// with nats.go alone, and answers how long publishing and the wait for
// every acknowledgement took.
func bareLoop(b *testing.B, s *natstest.Space, events []domain.RecordedEvent) time.Duration {
	b.Helper()
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		body, err := feed.Line(e)
		if err != nil {
			b.Fatal(err)
		}
		ws := broker.GlobalToken
		if id, ok := domain.WorkspaceOf(e.Event); ok {
			ws = id.String()
		}
		msgs[i] = &nats.Msg{Subject: fmt.Sprintf("%s.%s.%s", s.SubjectPrefix, ws, domain.EventName(e.Event)), Data: body, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.MsgIDHeader, e.Metadata.EventID.String())
	}
	nc, err := nats.Connect(s.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if futures[i], err = js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("the bare loop's acknowledgements did not all come within 5 minutes")
	}
	took := time.Since(start)
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	return took
}
