package benchmarks_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/projectionstest"
	"github.com/usersd/usersd/projections/userlist"
)

// quietLogger keeps the runners' and the store's routine messages out of
// the benchmark output; warnings and errors still show.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type latencies = projectionstest.Latencies

// ms and us render durations as float milliseconds and microseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// verdict renders whether a goal is met.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

// summary logs the one line a benchmark leaves behind (benchmark logs show
// without -v).
func summary(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Log("SUMMARY " + fmt.Sprintf(format, args...))
}

// startReadSide runs, as cmd/usersd/serve.go does, a runner for each read
// model the API waits for (the user list, the memberships, the audit) from
// src, and a waiter on them, until the benchmark ends; then it closes
// store, before pgtest drops the database. tune, if set, may change a read
// model's source and options.
func startReadSide(b *testing.B, ctx context.Context, pool *pgxpool.Pool, store *pgstore.Store, src projections.Source, log *slog.Logger,
	tune func(name string, s *projections.Source, opts *projections.RunnerOptions),
) *projections.Waiter {
	b.Helper()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range []projections.Projection{userlist.New(), memberships.New(), audit.New()} {
		s, opts := src, projections.RunnerOptions{Logger: log}
		if tune != nil {
			tune(p.Name(), &s, &opts)
		}
		r := projections.NewRunner(pool, p, s, opts)
		wg.Go(func() { _ = r.Run(runCtx) })
	}
	waiter := projections.NewWaiter(pool, nil, projections.WithWaiterLogger(log))
	if err := waiter.Start(runCtx); err != nil {
		stop()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stop()
		wg.Wait()
		waiter.Wait()
		store.Close()
	})
	return waiter
}

// inParallel runs f for 0..n-1 on workers goroutines, fails b if any call
// failed, and answers the latest position the calls returned.
func inParallel(b *testing.B, n, workers int, f func(i int) (domain.Position, error)) domain.Position {
	b.Helper()
	var (
		mu   sync.Mutex
		last domain.Position
		errs = make(chan error, n)
		wg   sync.WaitGroup
		sem  = make(chan struct{}, workers)
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pos, err := f(i)
			if err != nil {
				errs <- fmt.Errorf("workspace %d: %w", i, err)
				return
			}
			mu.Lock()
			if last.Less(pos) {
				last = pos
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return last
}

// newKEK is a fresh key-encryption key, as usersd keys generates one.
func newKEK(b *testing.B) pii.KEK {
	b.Helper()
	kek, err := pii.ParseKEK(pii.GenerateKEK())
	if err != nil {
		b.Fatal(err)
	}
	return kek
}

// openKeys opens the database's key store under kek and its key for
// stream names, as usersd serve does.
func openKeys(b *testing.B, ctx context.Context, pool *pgxpool.Pool, kek pii.KEK) (*keystore.Keyring, []byte) {
	b.Helper()
	keys := keystore.New(pool, kek)
	streamKey, err := keys.ServerKey(ctx, "stream-names")
	if err != nil {
		b.Fatal(err)
	}
	return keys, streamKey
}
