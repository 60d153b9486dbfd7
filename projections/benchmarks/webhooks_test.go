package benchmarks_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
)

const (
	webhookGoal       = 1000.0 // deliveries/s
	webhookWorkspaces = 128    // one webhook each, spread over the 16 partitions (8 each on average)
)

// BenchmarkWebhookDeliveries measures webhook deliveries per second end to
// end to an in-process HTTPS receiver that answers 200 at once: a backlog
// of events in 128 workspaces, each with a webhook subscribed to every
// event, is applied by the dispatcher (the delivery log's rows, the
// watermill-sql messages, the checkpoint), then delivered by the sender
// (16 partitions, a message at a time each: the event opened, signed,
// POSTed, the attempt logged, the message acknowledged). The clock runs
// from the service's start to the last delivery received. Beside it, in the
// same run: raw POSTs of bodies of the same size to the same receiver,
// from 16 workers (the partitions' concurrency) over the same kind of
// client (TLS, HTTP/2, kept-alive connections), with nothing else: the
// floor of HTTP alone. Goal: at least 1,000 deliveries/s. b.N is the number
// of deliveries, at least USERSD_BENCH_WEBHOOK_DELIVERIES (default 20,000:
// a run long enough that the start, a few hundred milliseconds, does not
// count, and one run at make bench's -benchtime 3s).
func BenchmarkWebhookDeliveries(b *testing.B) {
	n := max(b.N, testenv.PositiveInt(b, "USERSD_BENCH_WEBHOOK_DELIVERIES", 20_000))
	recv := webhooktest.Start(b, webhooktest.Chaos{})
	raw := rawPosts(b, recv, n)
	delivered := webhookDeliveries(b, recv, n)
	b.ReportMetric(delivered, "deliveries/s")
	b.ReportMetric(raw, "raw-posts/s")
	b.ReportMetric(delivered/raw, "ratio")
	b.ReportMetric(0, "ns/op")
	summary(b, "webhook deliveries: %.0f/s over %d deliveries (goal ≥ %.0f: %s); raw HTTPS POSTs to the same receiver %.0f/s; ratio %.2f",
		delivered, n, webhookGoal, verdict(delivered >= webhookGoal), raw, delivered/raw)
}

func webhookDeliveries(b *testing.B, recv *webhooktest.Receiver, n int) float64 {
	ctx := context.Background()
	pool, _ := pgtest.NewService(b)
	store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
	b.Cleanup(store.Close)
	keys := pii.NewMemoryKeyring()
	codec := eventstore.NewCodec(keys, []byte("the bench's stream-name key, 32B"))
	kek, err := pii.NewKEK(bytes.Repeat([]byte{3}, pii.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	secrets := keystore.New(pool, kek).WebhookSecrets()
	deps := eventstoretest.DepsWithCaches(store, codec, commands.EphemeralLinkSecrets(), eventstoretest.Caches{Workspaces: 64, Accounts: 100_000})
	deps.WebhookTargets, deps.WebhookSecrets = webhooks.Guard{AllowPrivate: true}, secrets
	policy := commands.DefaultInvitationPolicy()
	policy.Limits = domain.InviteLimits{}
	app := commands.NewApplication(deps, policy, commands.Instrumentation{}).Commands

	// The backlog: per workspace its webhook's subscription, then
	// invitations in batches of up to 500.
	per := max(1, n/webhookWorkspaces)
	total := 0
	for w := range webhookWorkspaces {
		ws, err := app.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{Name: fmt.Sprintf("Hooks %d", w),
			OwnerEmail: fmt.Sprintf("owner%d@hooks.bench", w), OwnerName: "Owner", Meta: commands.Meta{Actor: domain.Actor{System: true}}})
		if err != nil {
			b.Fatal(err)
		}
		admin := commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}}
		if _, err := app.SubscribeWebhook.Handle(ctx, commands.SubscribeWebhook{WorkspaceID: ws.WorkspaceID,
			URL: fmt.Sprintf("%s/hook/%d", recv.URL, w), Events: []string{"*"}, Meta: admin}); err != nil {
			b.Fatal(err)
		}
		total++
		for i := 0; i < per; i += 500 {
			var batch []string
			for j := i; j < min(i+500, per); j++ {
				batch = append(batch, fmt.Sprintf("u%d-%d@hooks.bench", w, j))
			}
			if _, err := app.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: ws.WorkspaceID, Emails: batch, Role: "Editor", Meta: admin}); err != nil {
				b.Fatal(err)
			}
			total += len(batch)
		}
	}
	svc, err := webhooks.New(pool, eventstore.Source{Store: store, Codec: codec}, secrets,
		func(ctx context.Context, typ string, version int, data []byte) (domain.RecordedEvent, error) {
			return codec.DecodeOne(ctx, eventstore.RecordedEvent{Type: typ, Data: data, Metadata: fmt.Appendf(nil, `{"schemaVersion":%d}`, version)})
		},
		webhooks.Options{Logger: quietLogger(), AllowPrivate: true, TLS: recv.TLS(), PollInterval: 10 * time.Millisecond, IdlePollInterval: 100 * time.Millisecond,
			Runner: projections.RunnerOptions{Logger: quietLogger(), LockRetry: 20 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	before := recv.Count()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { defer close(done); _ = svc.Run(runCtx) }()
	ok := recv.WaitFor(10*time.Minute, func() bool { return recv.Count()-before >= total })
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	<-done
	if !ok {
		b.Fatalf("%d of %d deliveries received after 10 minutes", recv.Count()-before, total)
	}
	if got := recv.Count() - before; got != total {
		b.Fatalf("%d deliveries received, want %d (every one at once)", got, total)
	}
	return float64(total) / elapsed.Seconds()
}

// rawPosts POSTs n bodies of a delivery's size to recv from 16 workers and
// answers POSTs per second.
func rawPosts(b *testing.B, recv *webhooktest.Receiver, n int) float64 {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: recv.TLS(), ForceAttemptHTTP2: true, MaxIdleConns: 64, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
	}}
	// A UserInvited's body, as a delivery's.
	body, err := webhooks.Body(domain.RecordedEvent{
		Envelope: domain.Envelope{Event: domain.UserInvited{WorkspaceID: uuid.New(), InvitationID: uuid.New(), UserID: uuid.New(), Email: "u1-123@hooks.bench",
			Role: "Editor", InvitedBy: uuid.New(), InviterRole: "Admin", InvitedAt: time.Now(), ExpiresAt: time.Now()},
			Metadata: domain.Metadata{EventID: uuid.New(), OccurredAt: time.Now()}},
		Position: domain.Position{Commit: 123456, Prepare: 7890},
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range webhooks.Partitions {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(recv.URL+"/raw", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}
