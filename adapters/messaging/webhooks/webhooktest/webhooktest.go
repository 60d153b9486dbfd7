// Package webhooktest is a webhook receiver for tests and benchmarks: an
// in-process HTTPS server that records every delivery and, at random,
// fails, holds its answer past the sender's timeout, or answers slowly;
// and Verify, a verification of Standard Webhooks signatures written apart
// from the sender's signing, as a receiver would.
package webhooktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Verify checks a delivery as Standard Webhooks tell a receiver to: secret
// is "whsec_" and the base64 of the key; the signature header holds one or
// more space-separated "v1,<base64>" signatures, one of which must be the
// HMAC-SHA256 of "<id>.<timestamp>.<body>"; the timestamp must be within
// tolerance of now.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	encoded, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return errors.New("the secret does not start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return fmt.Errorf("the secret is not base64: %w", err)
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", timestamp, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %s is %v away from now", timestamp, d)
	}
	signed := fmt.Sprintf("%s.%s.%s", id, timestamp, body)
	mac := hmac.New(sha256.New, key)
	io.WriteString(mac, signed)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(signatures) {
		version, value, found := strings.Cut(sig, ",")
		if !found || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// Chaos is how a Receiver misbehaves: each delivery fails with
// probability Fail (a 5xx, a 429, a 404 or a redirect), else is held past
// the sender's timeout with probability Timeout (for TimeoutFor, or until
// the sender hangs up), else is answered after SlowFor with probability
// Slow; otherwise it is answered 200 at once.
type Chaos struct {
	Fail, Timeout, Slow float64
	TimeoutFor, SlowFor time.Duration
	Seed                uint64
}

// Delivery is one request the receiver got.
type Delivery struct {
	Path                     string
	ID, Timestamp, Signature string
	ContentType              string
	Body                     []byte
	// Accepted is true when the receiver answered 2xx at once (or
	// slowly), false when it failed or held its answer.
	Accepted bool
}

// Receiver is an HTTPS webhook receiver.
type Receiver struct {
	// URL is the server's base URL (https://127.0.0.1:port).
	URL string
	srv *httptest.Server

	mu      sync.Mutex
	chaos   Chaos
	rng     *rand.Rand
	got     []Delivery
	changed chan struct{}
}

// Start starts a receiver, stopped when t ends.
func Start(t testing.TB, chaos Chaos) *Receiver {
	t.Helper()
	r := &Receiver{chaos: chaos, rng: rand.New(rand.NewPCG(chaos.Seed, chaos.Seed^0x5eed)), changed: make(chan struct{})}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.EnableHTTP2 = true
	r.srv.StartTLS()
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// SetChaos changes how the receiver misbehaves from now on.
func (r *Receiver) SetChaos(c Chaos) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chaos = c
}

// TLS is a client configuration that trusts the receiver's certificate.
func (r *Receiver) TLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(r.srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// CertPEM is the receiver's certificate, PEM-encoded: a trust store for
// another process (SSL_CERT_FILE).
func (r *Receiver) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return
	}
	r.mu.Lock()
	c := r.chaos
	roll := r.rng.Float64()
	kind := r.rng.IntN(4)
	r.mu.Unlock()
	d := Delivery{
		Path: req.URL.Path, ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), ContentType: req.Header.Get("Content-Type"), Body: body,
	}
	status := http.StatusOK
	switch {
	case roll < c.Fail:
		status = []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusFound}[kind]
		if kind == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
	case roll < c.Fail+c.Timeout:
		r.record(d)
		select {
		case <-time.After(c.TimeoutFor):
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
		return
	case roll < c.Fail+c.Timeout+c.Slow:
		time.Sleep(c.SlowFor)
		d.Accepted = true
	default:
		d.Accepted = true
	}
	r.record(d)
	w.WriteHeader(status)
}

func (r *Receiver) record(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	close(r.changed)
	r.changed = make(chan struct{})
}

// All is every delivery received so far, in order of receipt.
func (r *Receiver) All() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Count is how many deliveries were received so far.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// Accepted is the deliveries to path accepted so far, in order.
func (r *Receiver) Accepted(path string) []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Delivery
	for _, d := range r.got {
		if d.Path == path && d.Accepted {
			out = append(out, d)
		}
	}
	return out
}

// Changed is closed at the next delivery received.
func (r *Receiver) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// WaitFor waits until cond holds, checking it at each delivery, for at
// most d; it reports whether it held.
func (r *Receiver) WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	for {
		changed := r.Changed()
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-deadline:
			return cond()
		}
	}
}
