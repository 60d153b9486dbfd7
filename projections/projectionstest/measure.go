package projectionstest

import (
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool opens a pool of at most maxConns connections on the database at
// url, for a test or benchmark that sizes its pool (as the load it
// measures, or to one connection to see what holds it); the pool pgtest
// hands out has pgx's default size. It is closed when tb ends.
func Pool(tb testing.TB, url string, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// CreateFloorTable creates the table name with the columns of the event
// store's events table but only a bigserial primary key: no revision or
// event id uniqueness, no global-order index, no function. Benchmarks
// insert the same rows there to measure the floor under an append.
func CreateFloorTable(tb testing.TB, pool *pgxpool.Pool, name string) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), `CREATE TABLE `+name+` (
		position   bigserial PRIMARY KEY,
		tx_id      bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
		event_id   uuid NOT NULL,
		stream_id  text NOT NULL,
		revision   bigint NOT NULL,
		type       text NOT NULL,
		data       jsonb NOT NULL,
		metadata   jsonb,
		created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		tb.Fatal(err)
	}
}

// Latencies collects samples and answers percentiles.
type Latencies []time.Duration

// Percentile answers the p-th percentile (0 < p ≤ 100) by the
// nearest-rank method; zero without samples.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// LoadAverage answers the machine's load averages over 1, 5 and 15
// minutes as /proc/loadavg gives them, for a measurement to state how
// loaded the machine was; "unknown" where there is none.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
