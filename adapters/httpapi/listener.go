package httpapi

import (
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/usersd/usersd/internal/positive"
)

// DefaultConnsPerClient is how many connections one client address (an
// IPv6 /64) may hold open at once: a browser opens about six, a busy
// office behind one NAT a few dozen.
const DefaultConnsPerClient = 128

// ConnLimit configures LimitConnsPerClient.
type ConnLimit struct {
	// PerClient is how many connections one address (an IPv6 /64) may hold
	// at once; 0 is DefaultConnsPerClient.
	PerClient int
	// Exempt are the peers not counted: the trusted proxies, which carry
	// many clients' connections (USERSD_TRUSTED_PROXIES).
	Exempt []netip.Prefix
	// Refused, when set, is called for each connection closed at once
	// because its address holds too many (a metric).
	Refused func()
}

// LimitConnsPerClient wraps l so that no client address holds more than
// c.PerClient connections: a connection beyond that is closed as soon as
// it is accepted, before a byte is read, so that one client cannot use up
// the server's connections (slow bodies, stalled reads). The address is the
// TCP peer's; X-Forwarded-For is no use before a request is read, so
// trusted proxies are exempt and must limit their own clients.
func LimitConnsPerClient(l net.Listener, c ConnLimit) net.Listener {
	c.PerClient = positive.Or(c.PerClient, DefaultConnsPerClient)
	return &limitListener{Listener: l, cfg: c, open: make(map[netip.Prefix]int)}
}

type limitListener struct {
	net.Listener
	cfg ConnLimit

	mu   sync.Mutex
	open map[netip.Prefix]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, counted := l.key(c)
		if !counted {
			return c, nil
		}
		l.mu.Lock()
		full := l.open[key] >= l.cfg.PerClient
		if !full {
			l.open[key]++
		}
		l.mu.Unlock()
		if full {
			if l.cfg.Refused != nil {
				l.cfg.Refused()
			}
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l, key: key}, nil
	}
}

// key is the connection's client key; counted is false for exempt peers
// and for connections that have no IP address (a Unix socket).
func (l *limitListener) key(c net.Conn) (netip.Prefix, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Prefix{}, false
	}
	a := ap.Addr().Unmap()
	for _, p := range l.cfg.Exempt {
		if p.Contains(a) {
			return netip.Prefix{}, false
		}
	}
	return addrKey(a), true
}

func (l *limitListener) done(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// countedConn gives its place back when closed (once, however often
// Close is called).
type countedConn struct {
	net.Conn
	l    *limitListener
	key  netip.Prefix
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.done(c.key) })
	return err
}

// CloseWrite and ReadFrom keep what the server uses of a *net.TCPConn:
// a graceful close, and sendfile for static files.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}
