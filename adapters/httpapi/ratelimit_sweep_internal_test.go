package httpapi

import (
	"net/netip"
	"testing"
	"time"
)

// TestFullLimiterSweepsOncePerRefill: once maxRateClients are tracked, a
// flood of new addresses sweeps the map once per refill interval, not
// once per request; a sweep after the interval frees the refilled buckets.
func TestFullLimiterSweepsOncePerRefill(t *testing.T) {
	l := newClientLimiter(RateLimit{Burst: 1, Every: time.Hour})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(i int) netip.Prefix {
		return addrKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	for i := range maxRateClients {
		l.allow(key(i), t0)
	}
	for i := range 100 {
		l.allow(key(maxRateClients+i), t0.Add(time.Second))
	}
	if l.sweeps != 1 {
		t.Errorf("100 new clients on a full limiter within one interval: %d sweeps, want 1", l.sweeps)
	}
	if _, ok := l.allow(key(maxRateClients+200), t0.Add(2*time.Hour)); !ok || l.sweeps != 2 {
		t.Errorf("a new client after the interval: allowed %v, %d sweeps; want allowed after a 2nd sweep", ok, l.sweeps)
	}
	if n := len(l.clients); n != 1 {
		t.Errorf("after the sweep: %d clients tracked, want 1 (the refilled ones forgotten)", n)
	}
}
