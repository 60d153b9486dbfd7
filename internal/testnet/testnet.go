// Package testnet has the network helpers tests share: a free local
// address for a server a test is about to start, or one that nothing
// answers at. It is for tests only (it takes a testing.TB).
package testnet

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address nothing listens on now: the port
// the kernel just gave a listener, which it then closed. Another process
// may take it before the caller does; tests start their server on it at
// once, and a test that wants a dead peer uses it as one.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	return addr
}
