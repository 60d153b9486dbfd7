// Package testenv reads the environment variables that size long tests
// and benchmarks. It is for tests only (it takes a testing.TB).
package testenv

import (
	"os"
	"strconv"
	"testing"
)

// PositiveInt reads the positive integer in the environment variable
// name, or answers def when it is not set; anything else fails the test.
func PositiveInt(tb testing.TB, name string, def int) int {
	tb.Helper()
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
