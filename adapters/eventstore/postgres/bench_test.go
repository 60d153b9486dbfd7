package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

// The benchmarks compare Store.Append of one event per call with the floor
// it cannot beat: an autocommitted single-row INSERT of the same row into a
// plain table with only a bigserial primary key, measured in the same run on
// the same database.
//
//	go test -bench . -run '^$' ./adapters/eventstore/postgres/
//
// BenchmarkAppend reports each side's events/s; BenchmarkAppendRatio runs
// both interleaved and reports store/raw as "ratio".

var writerCounts = []int{1, 16}

func BenchmarkAppend(b *testing.B) {
	for _, writers := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			env := newBenchEnv(b, writers)
			b.Run("store", func(b *testing.B) { env.report(b, env.runStore(b, b.N)) })
			b.Run("raw", func(b *testing.B) { env.report(b, env.runRaw(b, b.N)) })
		})
	}
}

func BenchmarkAppendRatio(b *testing.B) {
	for _, writers := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			env := newBenchEnv(b, writers)
			b.ResetTimer()
			// Interleave in chunks so that drift (a checkpoint, a growing
			// table, a noisy neighbour) hits both sides alike.
			var store, raw time.Duration
			for done := 0; done < b.N; {
				n := min(b.N-done, 2000)
				store += env.runStore(b, n)
				raw += env.runRaw(b, n)
				done += n
			}
			storeRate := float64(b.N) / store.Seconds()
			rawRate := float64(b.N) / raw.Seconds()
			b.ReportMetric(storeRate, "store-events/s")
			b.ReportMetric(rawRate, "raw-events/s")
			b.ReportMetric(storeRate/rawRate, "ratio")
		})
	}
}

type benchEnv struct {
	writers int
	pool    *pgxpool.Pool
	store   *postgres.Store
	runs    atomic.Int64 // makes stream names unique per run
	data    []byte
	meta    []byte
}

func newBenchEnv(b *testing.B, writers int) *benchEnv {
	_, url := pgtest.New(b)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(writers + 2) // every writer has a connection; one for the notifier
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	// The same columns as events, but only the primary key: no revision
	// or event id uniqueness, no global-order index, no function.
	_, err = pool.Exec(ctx, `CREATE TABLE raw_events (
		position   bigserial PRIMARY KEY,
		tx_id      bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
		event_id   uuid NOT NULL,
		stream_id  text NOT NULL,
		revision   bigint NOT NULL,
		type       text NOT NULL,
		data       jsonb NOT NULL,
		metadata   jsonb,
		created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		b.Fatal(err)
	}
	store := postgres.New(pool)
	b.Cleanup(store.Close)
	env := &benchEnv{
		writers: writers,
		pool:    pool,
		store:   store,
		// About 250 bytes of event, as a typical usersd event.
		data: []byte(`{"workspace_id": "` + uuid.NewString() + `", "user_id": "` + uuid.NewString() +
			`", "email": "someone.with.a.long.name@example.com", "role": "Member", "invited_by": "` + uuid.NewString() + `"}`),
		meta: []byte(`{"actor": "` + uuid.NewString() + `", "correlation_id": "c-1"}`),
	}
	// Warm up both paths: connections, prepared statements, the function.
	env.runStore(b, 4*writers)
	env.runRaw(b, 4*writers)
	return env
}

// newEventID makes event ids as usersd does: UUIDv7, time-ordered, so the
// unique index on event ids grows at its right edge.
func newEventID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func (env *benchEnv) report(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(b.N)/d.Seconds(), "events/s")
}

// streamsPerWriter makes most appends go to an existing stream with an exact
// expected revision, as command handlers do, and some create a stream.
const streamsPerWriter = 10

// runStore appends n events, one per call, from env.writers goroutines.
func (env *benchEnv) runStore(b *testing.B, n int) time.Duration {
	run := env.runs.Add(1)
	return env.parallel(b, n, func(w int) func(i int) error {
		next := make([]uint64, streamsPerWriter)
		return func(i int) error {
			k := i % streamsPerWriter
			var expected eventstore.ExpectedRevision = eventstore.NoStream{}
			if next[k] > 0 {
				expected = eventstore.Revision(next[k] - 1)
			}
			stream := fmt.Sprintf("bench-%d-%d-%d", run, w, k)
			_, err := env.store.Append(context.Background(), stream, expected,
				eventstore.EventData{ID: newEventID(), Type: "UserInvited.v1", Data: env.data, Metadata: env.meta})
			next[k]++
			return err
		}
	})
}

// runRaw inserts n rows like the store's, one autocommitted INSERT each.
func (env *benchEnv) runRaw(b *testing.B, n int) time.Duration {
	run := env.runs.Add(1)
	return env.parallel(b, n, func(w int) func(i int) error {
		next := make([]int64, streamsPerWriter)
		return func(i int) error {
			k := i % streamsPerWriter
			stream := fmt.Sprintf("bench-%d-%d-%d", run, w, k)
			_, err := env.pool.Exec(context.Background(),
				`INSERT INTO raw_events (event_id, stream_id, revision, type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6)`,
				[16]byte(newEventID()), stream, next[k], "UserInvited.v1", env.data, env.meta)
			next[k]++
			return err
		}
	})
}

// parallel runs n operations spread over env.writers goroutines, each with
// its own state from newWriter, and returns the elapsed time.
func (env *benchEnv) parallel(b *testing.B, n int, newWriter func(w int) func(i int) error) time.Duration {
	var taken atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for w := range env.writers {
		op := newWriter(w)
		wg.Go(func() {
			for i := 0; ; i++ {
				if taken.Add(1) > int64(n) {
					return
				}
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatalf("writer: %v", *err)
	}
	return d
}
