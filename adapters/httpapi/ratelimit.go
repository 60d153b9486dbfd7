package httpapi

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/positive"
)

// RateLimit is a token bucket: Burst requests at once, then one more every
// Every. Zero fields take the defaults of where it is used.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// Defaults of Config.TokenRate. A person calls these endpoints once or
// twice per invitation (the accept page looks the token up, then accepts
// it); the bucket is generous because many people may share an address
// (an office behind NAT). Forged tokens cost a stream read each and can no
// longer empty the aggregate cache; the limit bounds what one address can
// make the replica do.
const (
	DefaultTokenBurst = 60
	DefaultTokenEvery = time.Second
)

// maxRateClients bounds the addresses a limiter remembers. Beyond it,
// after dropping those whose bucket has refilled, new addresses share one
// bucket: a flood from many addresses is then limited as one client. The
// map is swept at most once per refill interval (a token's time): a flood
// of new addresses costs one sweep an interval, not one a request.
const maxRateClients = 1 << 16

// clientKey is what per-client limits count by: the address, or for IPv6
// its /64, which one subscriber usually holds whole. An address that does
// not parse (not a TCP peer) counts as the zero prefix, one client.
func clientKey(addr string) netip.Prefix {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	return addrKey(a)
}

func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// clientLimiter keeps a token bucket per client.
type clientLimiter struct {
	limit rate.Limit
	burst int
	every time.Duration

	mu        sync.Mutex
	clients   map[netip.Prefix]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
	sweeps    int // how many sweeps ran (for tests)
}

func newClientLimiter(l RateLimit) *clientLimiter {
	l.Burst = positive.Or(l.Burst, DefaultTokenBurst)
	l.Every = positive.Or(l.Every, DefaultTokenEvery)
	lim := rate.Every(l.Every)
	return &clientLimiter{limit: lim, burst: l.Burst, every: l.Every, clients: make(map[netip.Prefix]*rate.Limiter), overflow: rate.NewLimiter(lim, l.Burst)}
}

// allow takes a token of key's bucket, or answers how long until one is
// there.
func (l *clientLimiter) allow(key netip.Prefix, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	lim, found := l.clients[key]
	if !found {
		if len(l.clients) >= maxRateClients && now.Sub(l.lastSweep) >= l.every {
			l.sweep(now)
		}
		if len(l.clients) < maxRateClients {
			lim = rate.NewLimiter(l.limit, l.burst)
			l.clients[key] = lim
		} else {
			lim = l.overflow
		}
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep forgets the clients whose bucket is full again: a new bucket is
// the same.
func (l *clientLimiter) sweep(now time.Time) {
	l.lastSweep = now
	l.sweeps++
	for k, lim := range l.clients {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
}

// limitClient answers 429 too_many_requests, with Retry-After, once the
// request's client (its address as clientIP sees it, so behind trusted
// proxies the forwarded one) has used up its bucket.
func (s *Server) limitClient(r *http.Request) error {
	addr := ""
	if rc := requestContext(r.Context()); rc != nil {
		addr = rc.IP
	}
	now := time.Now()
	wait, ok := s.tokenRate.allow(clientKey(addr), now)
	if ok {
		return nil
	}
	p := newProblem(codeTooManyRequests, "too many requests with invitation tokens from your address; try again later")
	p.retryAt = now.Add(wait)
	return p
}
