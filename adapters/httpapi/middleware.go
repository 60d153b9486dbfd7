package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/usersd/usersd/domain"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyRequest
	keyRoute
)

// routeInfo carries the matched route's template, and the problem's code
// when the answer was one, out to the access log and the observer;
// cancelled when the client left before the answer (writeProblem).
type routeInfo struct {
	template, code string
	cancelled      bool
}

// nameRoute is a mux middleware (it runs on matched routes only) that tells
// the access log which route served the request.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(keyRoute).(*routeInfo); ok {
			if rt := mux.CurrentRoute(r); rt != nil {
				if t, err := rt.GetPathTemplate(); err == nil {
					info.template = t
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// maxRequestIDLength bounds a trusted proxy's X-Request-Id; a longer one,
// or one with other characters than [A-Za-z0-9._:-], is replaced by a new
// id.
const maxRequestIDLength = 128

// maxUserAgentLength bounds the user agent kept in event metadata, in bytes.
const maxUserAgentLength = 256

func requestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

func requestContext(ctx context.Context) *domain.RequestContext {
	rc, _ := ctx.Value(keyRequest).(*domain.RequestContext)
	return rc
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLength {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanUserAgent truncates the user agent between characters and drops
// control characters, so that it is safe in logs, audit entries and CSV.
func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "")
	ua = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, ua)
	if len(ua) > maxUserAgentLength {
		n := maxUserAgentLength
		for n > 0 && !utf8.RuneStart(ua[n]) {
			n--
		}
		ua = ua[:n]
	}
	return ua
}

// clientIP is the peer's address, or, when the peer is a trusted proxy, the
// nearest untrusted address X-Forwarded-For names (read right to left, as
// each proxy appends the address it saw).
func (s *Server) clientIP(r *http.Request) string {
	peer, ok := peerAddr(r)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		return host
	}
	if !s.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop at the last address we can vouch for
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

// peerAddr is the TCP peer's address.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return peer.Unmap(), true
}

// requestIDOf is the request's id: the X-Request-Id a trusted proxy sent,
// if valid, else a new one. A client's own would become the correlation
// id of the events it causes, in the audit history, unchecked.
func (s *Server) requestIDOf(r *http.Request) string {
	if peer, ok := peerAddr(r); ok && s.trusted(peer) {
		if id := r.Header.Get("X-Request-Id"); validRequestID(id) {
			return id
		}
	}
	return newRequestID()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setSecurityHeaders sets the headers every answer carries, whatever
// writes it: no content sniffing, so that a body is only ever what its
// Content-Type says.
func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
}

// SecurityHeaders sets the headers every answer carries before next runs:
// the outermost layer of a listener's handler (usersd serve puts it around
// the API and the web UI, and around /metrics on its own address). The
// API's own outermost layer (instrument) sets them too.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// instrument is the outermost layer: it sets the security headers, gives
// every request its id and request context, logs it once done, and turns
// a panic into a 500 problem. The access log holds the route template,
// never the path (which may hold ids only, but query strings and bodies may
// hold addresses and tokens).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		setSecurityHeaders(w.Header())
		id := s.requestIDOf(r)
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), keyRequestID, id)
		ctx = context.WithValue(ctx, keyRequest, &domain.RequestContext{
			IP: s.clientIP(r), UserAgent: cleanUserAgent(r.UserAgent()),
		})
		info := &routeInfo{template: "unmatched"}
		ctx = context.WithValue(ctx, keyRoute, info)
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			aborted := v == http.ErrAbortHandler
			if v != nil && !aborted {
				s.log.ErrorContext(ctx, "panic serving request", "request_id", id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeProblem(sw, r, s.log, newProblem(codeInternal, "internal error; quote the request id when reporting it"))
				}
			}
			status := sw.status
			switch {
			case clientGone(r) && (info.cancelled || status == 0 || aborted):
				// The client left before its answer was whole: nobody
				// got a 500 or a 200 (nginx's 499).
				status, info.code = statusClientClosedRequest, outcomeCancelled
			default:
				if aborted {
					s.log.WarnContext(ctx, "http request aborted", "request_id", id)
				}
				if status == 0 {
					status = http.StatusOK
				}
			}
			took := time.Since(start)
			if s.cfg.Observer != nil {
				s.cfg.Observer.ObserveRequest(r.Method, info.template, status, info.code, took)
			}
			s.log.LogAttrs(ctx, slog.LevelInfo, "http request",
				slog.String("method", r.Method),
				slog.String("route", info.template),
				slog.Int("status", status),
				slog.Duration("duration", took),
				slog.Int64("bytes", sw.bytes),
				slog.String("request_id", id))
			if aborted {
				panic(v) // net/http cuts the connection
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
