package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/adapters/broker"
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/metrics"
	"github.com/usersd/usersd/projections"
)

// envNATSURL turns on publishing every event to NATS JetStream
// (docs/integrations.md, "NATS JetStream").
const envNATSURL = "USERSD_NATS_URL"

// Tests only, undocumented: a stream and a subject prefix of a test's own,
// so that tests of the binary share one NATS server without seeing each
// other. Production uses broker.StreamName and broker.SubjectPrefix.
const (
	envNATSTestStream        = "USERSD_NATS_TEST_STREAM"
	envNATSTestSubjectPrefix = "USERSD_NATS_TEST_SUBJECT_PREFIX"
)

// natsConfig is where serve publishes the events; url "" publishes none.
type natsConfig struct {
	url, stream, subjectPrefix string
	servers                    string // the servers' host:port, for the log: no credentials
}

// readNATSConfig reads USERSD_NATS_URL: one or more servers,
// comma-separated, each nats://, tls://, ws:// or wss:// with a host.
// Errors never repeat the value, which may hold a password or a token.
func readNATSConfig(getenv func(string) string) (natsConfig, error) {
	v, src := natsURLSetting.trimmed(nil, getenv)
	if v == "" {
		return natsConfig{}, nil
	}
	var hosts []string
	parts := strings.Split(v, ",")
	for i, part := range parts {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			return natsConfig{}, usageErrorf("%s: server %d of %d is not a URL such as nats://127.0.0.1:4222", src, i+1, len(parts))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return natsConfig{}, usageErrorf("%s: server %d of %d: want the scheme nats://, tls://, ws:// or wss://", src, i+1, len(parts))
		}
		hosts = append(hosts, u.Host)
	}
	return natsConfig{
		url:           v,
		stream:        natsTestStreamSetting.get(getenv),
		subjectPrefix: natsTestSubjectPrefixSetting.get(getenv),
		servers:       strings.Join(hosts, ","),
	}, nil
}

// startPublisher runs the JetStream publisher (a projection runner of its
// own, under the runner's lock: one replica publishes) until ctx ends,
// when the returned wait returns. It reports its progress as the
// projection nats_jetstream (usersd_projection_*) and its health as
// usersd_nats_publisher_up. It answers nil without USERSD_NATS_URL.
func startPublisher(ctx context.Context, e *env, rt *opened, cfg natsConfig, m *metrics.Metrics) (wait func(), err error) {
	if cfg.url == "" {
		return func() {}, nil
	}
	pub, err := broker.New(broker.Options{URL: cfg.url, Stream: cfg.stream, SubjectPrefix: cfg.subjectPrefix, Logger: e.Log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envNATSURL, err)
	}
	runner := projections.NewRunner(rt.pool, pub, eventstore.Source{Store: rt.store, Codec: rt.codec}, projections.RunnerOptions{
		Logger: e.Log, BatchSize: broker.BatchSize,
		OnProgress: func(pr projections.Progress) {
			m.ObserveProjection(pr.Name, pr.Applied, pr.LastEventAt, pr.CaughtUp, time.Now())
		},
	})
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usersd_nats_publisher_up",
		Help: "1 while this replica's JetStream publisher works (publishing, caught up, or standing by for another replica), " +
			"0 while it fails (NATS or the database unreachable) and retries. Its lag is usersd_projection_lag_seconds{projection=\"" + broker.Name + "\"}.",
	}, func() float64 {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if runner.Health(hctx) != nil {
			return 0
		}
		return 1
	})
	if err := m.Registry.Register(up); err != nil {
		pub.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer pub.Close()
		if err := runner.Run(ctx); err != nil && ctx.Err() == nil {
			e.Log.Error("nats: the publisher stopped", "err", err)
		}
	}()
	stream, prefix := cmp.Or(cfg.stream, broker.StreamName), cmp.Or(cfg.subjectPrefix, broker.SubjectPrefix)
	e.Log.Info("nats: publishing every event to JetStream", "servers", cfg.servers, "stream", stream, "subjects", prefix+".>")
	return func() { <-done }, nil
}
