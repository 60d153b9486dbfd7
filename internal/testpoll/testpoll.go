// Package testpoll waits in tests for a condition that something running
// in the background makes true. It is for tests only (it takes a
// testing.TB).
package testpoll

import (
	"testing"
	"time"
)

// Until checks cond every 20 ms until it holds, and fails the test if it
// still does not after within; what names the condition in the failure.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
