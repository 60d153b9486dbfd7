package benchmarks_test

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/usersd/usersd/projections/projectionstest"
)

// quietLogger keeps the runners' and the store's routine messages out of
// the benchmark output; warnings and errors still show.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// envInt reads a positive integer from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
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
