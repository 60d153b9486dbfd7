package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/usersd/usersd/domain"
)

// Guard keeps webhooks away from the service's own network (SSRF): it
// refuses loopback, private (RFC 1918, unique-local), link-local (the
// cloud metadata address 169.254.169.254 among them), shared (CGNAT),
// unspecified, multicast and reserved addresses, IPv4 ones also inside
// IPv6 (mapped, NAT64, 6to4). Check resolves a URL's host when a webhook
// is subscribed; Control checks the very address every delivery connects
// to, so that a name that resolves elsewhere later (DNS rebinding) is
// refused too. AllowPrivate (USERSD_WEBHOOK_ALLOW_PRIVATE=true) lets every
// address through.
type Guard struct {
	AllowPrivate bool
	// Resolver resolves host names at subscription; nil is
	// net.DefaultResolver.
	Resolver *net.Resolver
}

// resolveTimeout bounds the resolution of a webhook's host at subscription.
const resolveTimeout = 5 * time.Second

// Check implements commands.WebhookTargets: every address the URL's host
// resolves to must be allowed. A refusal is a domain error
// webhook_url_forbidden about "url".
func (g Guard) Check(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return forbidden("the url has no host")
	}
	if g.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := Refused(ip); why != "" {
			return forbidden("the url's address %s is %s", ip, why)
		}
		return nil
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := r.LookupNetIP(rctx, "ip", host)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return forbidden("the url's host %s does not resolve", host)
	}
	for _, ip := range ips {
		if why := Refused(ip); why != "" {
			return forbidden("the url's host %s resolves to %s, which is %s", host, ip.Unmap(), why)
		}
	}
	return nil
}

func forbidden(format string, args ...any) error {
	return &domain.Error{Code: domain.CodeWebhookURLForbidden, Field: "url",
		Message: fmt.Sprintf(format, args...) + "; webhooks may only call public addresses"}
}

// errRefused is the error of a connection Control refused.
var errRefused = errors.New("webhook target refused")

// Control is a net.Dialer's Control: it refuses a connection to an address
// Refused names, unless AllowPrivate.
func (g Guard) Control(_, address string, _ syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s is no address", errRefused, address)
	}
	if why := Refused(ap.Addr()); why != "" {
		return fmt.Errorf("%w: %s is %s", errRefused, ap.Addr().Unmap(), why)
	}
	return nil
}

// refusedPrefixes are the ranges no webhook may reach, and why.
var refusedPrefixes = func() []struct {
	p   netip.Prefix
	why string
} {
	var out []struct {
		p   netip.Prefix
		why string
	}
	for _, r := range []struct{ prefix, why string }{
		{"0.0.0.0/8", "on this network"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "shared (carrier-grade NAT)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata among them)"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "reserved for protocol assignments"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "reserved for benchmarking"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "an IPv4-compatible address (deprecated)"},
		{"100::/64", "a discard prefix"},
		{"fc00::/7", "private (unique-local)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, struct {
			p   netip.Prefix
			why string
		}{netip.MustParsePrefix(r.prefix), r.why})
	}
	return out
}()

// IPv6 prefixes that carry an IPv4 address, checked as that address.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Refused answers why ip may not be a webhook's target ("private",
// "loopback", ...), or "" when it may.
func Refused(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return "not an address"
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			if why := Refused(netip.AddrFrom4([4]byte(b[12:16]))); why != "" {
				return why + " (in NAT64)"
			}
		case sixToFour.Contains(ip):
			if why := Refused(netip.AddrFrom4([4]byte(b[2:6]))); why != "" {
				return why + " (in 6to4)"
			}
		}
	}
	for _, r := range refusedPrefixes {
		if r.p.Contains(ip) {
			return r.why
		}
	}
	return ""
}
