package httpapi

import (
	"net/http"
	"time"
)

// Timeouts are an http.Server's deadlines. They bound every ordinary
// request; a streamed answer replaces the write deadline with its own,
// renewed on progress (see stream.go).
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included, from its
	// first byte: a client that sends its body a byte at a time is
	// answered 408 request_timeout and disconnected.
	Read time.Duration
	// Write bounds the answer, from the end of the request's headers.
	Write time.Duration
	// Idle bounds how long a kept-alive connection waits for its next
	// request.
	Idle time.Duration
}

// DefaultTimeouts are usersd serve's. An ordinary request needs far less:
// its body is at most 1 MiB (30 s allows a client 35 KB/s), and its work
// waits for read models at most 5 s (X-Consistent-With).
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      40 * time.Second,
	Idle:       2 * time.Minute,
}

// NewHTTPServer returns an http.Server for h with timeouts t (zero fields
// take DefaultTimeouts').
func NewHTTPServer(h http.Handler, t Timeouts) *http.Server {
	d := DefaultTimeouts
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pick(t.ReadHeader, d.ReadHeader),
		ReadTimeout:       pick(t.Read, d.Read),
		WriteTimeout:      pick(t.Write, d.Write),
		IdleTimeout:       pick(t.Idle, d.Idle),
		MaxHeaderBytes:    64 << 10,
	}
}
