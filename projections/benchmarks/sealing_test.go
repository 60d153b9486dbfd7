package benchmarks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/userlist"
)

// sealingEvents is the history BenchmarkSealingRebuild rebuilds from (or
// USERSD_BENCH_EVENTS, if fewer): big enough that most people's keys are
// not in the key store's cache when their events come.
const sealingEvents = 200_000

// BenchmarkSealingRebuild measures what sealing costs a rebuild: the
// same history (BenchmarkRebuild's generator, same seed) written once with
// every personal value sealed under keys of the PostgreSQL key store
// (adapters/keystore) and once in clear, as usersd wrote it before sealing,
// each in its own database; then the user list and the audit rebuilt from
// each with projections.Rebuild, the two sides alternating. Both sides read
// through the codec usersd runs (eventstore.NewCodec over the database's
// key store): on the plain history it finds nothing sealed and asks the
// keyring nothing; on the sealed one it looks up the keys of each batch's
// people (one round trip per batch for those not cached) and opens every
// value (AES-GCM). Each rebuild gets a fresh keyring, so that it starts
// with an empty cache as a rebuild after a restart does. ratio is
// sealed/plain events per second (the goal: ≥ 0.8).
//
// The timer runs only around the rebuilds.
func BenchmarkSealingRebuild(b *testing.B) {
	n := min(testenv.PositiveInt(b, envEvents, sealingEvents), sealingEvents)
	ctx := context.Background()
	kek := newKEK(b)
	type side struct {
		name  string
		pool  *pgxpool.Pool
		src   func() eventstore.Source
		spent time.Duration
	}
	var seeded []string
	setup := func(name string, seal bool) *side {
		pool, _ := pgtest.New(b)
		keys, streamKey := openKeys(b, ctx, pool, kek)
		encode := encoder(encodePlain)
		if seal {
			encode = eventstore.NewCodec(keys, streamKey).Encode
		}
		start := time.Now()
		h := seedHistoryWith(b, ctx, pool, n, benchWorkspaces, seedPerTx, encode)
		seeded = append(seeded, fmt.Sprintf("%s: seeded %d events in %s, %.0f bytes of data+metadata per event on average",
			name, n, time.Since(start).Round(time.Millisecond), float64(h.bytes)/float64(n)))
		store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
		b.Cleanup(store.Close)
		return &side{name: name, pool: pool, src: func() eventstore.Source {
			return eventstore.Source{Store: store, Codec: eventstore.NewCodec(keystore.New(pool, kek), streamKey)}
		}}
	}
	plain, sealed := setup("plain", false), setup("sealed", true)

	for i, p := range []projections.ReadModel{userlist.New(), audit.New()} {
		b.Run(p.Name(), func(b *testing.B) {
			if i == 0 { // a parent benchmark's own log is not shown
				for _, s := range seeded {
					b.Log(s)
				}
			}
			plain.spent, sealed.spent = 0, 0
			rebuild := func(s *side) {
				res, err := projections.Rebuild(ctx, s.pool, p, s.src(), projections.RebuildOptions{Logger: quietLogger()})
				if err != nil {
					b.Fatalf("rebuild %s from the %s history: %v", p.Name(), s.name, err)
				}
				if res.Applied != n {
					b.Fatalf("rebuild %s from the %s history applied %d events, want %d", p.Name(), s.name, res.Applied, n)
				}
				s.spent += res.Duration
			}
			b.StopTimer()
			for i := range b.N {
				first, second := plain, sealed
				if i%2 == 1 {
					first, second = sealed, plain
				}
				b.StartTimer()
				rebuild(first)
				rebuild(second)
				b.StopTimer()
			}
			total := float64(n) * float64(b.N)
			plainRate, sealedRate := total/plain.spent.Seconds(), total/sealed.spent.Seconds()
			b.ReportMetric(plainRate, "plain-events/s")
			b.ReportMetric(sealedRate, "sealed-events/s")
			b.ReportMetric(sealedRate/plainRate, "ratio")
			summary(b, "%s: rebuilt %d events at %.0f events/s written plain, %.0f events/s written sealed: ratio %.2f (goal ≥ 0.8: %s)",
				p.Name(), n, plainRate, sealedRate, sealedRate/plainRate, verdict(sealedRate/plainRate >= 0.8))
		})
	}
}

// encodePlain encodes events as usersd did before sealing: every value in
// clear. Only the benchmarks' baseline writes so.
func encodePlain(_ context.Context, envs ...domain.Envelope) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, len(envs))
	for i, env := range envs {
		data, err := domain.EncodeEvent(env.Event)
		if err != nil {
			return nil, err
		}
		t, _ := domain.TypeOf(env.Event)
		meta := env.Metadata
		meta.SchemaVersion = t.Version
		md, err := json.Marshal(meta)
		if err != nil {
			return nil, fmt.Errorf("encode metadata: %w", err)
		}
		out[i] = eventstore.EventData{ID: meta.EventID, Type: t.Name, Data: data, Metadata: md}
	}
	return out, nil
}
