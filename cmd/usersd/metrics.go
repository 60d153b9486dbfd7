package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/usersd/usersd/adapters/httpapi"
)

// envMetricsAddr moves /metrics to an address of its own (e.g. one only
// the monitoring network reaches), so that it need not be public.
const envMetricsAddr = "USERSD_METRICS_ADDR"

// metricsAddr reads -metrics-addr on fs, else USERSD_METRICS_ADDR: a listen
// address other than httpAddr, or "" to serve /metrics on the main address.
func metricsAddr(fs *flag.FlagSet, getenv func(string) string, httpAddr string) (string, error) {
	v, name := metricsAddrSetting.trimmed(fs, getenv)
	if v == "" {
		return "", nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return "", usageErrorf("%s=%q is not a listen address such as 127.0.0.1:9090 or :9090", name, v)
	}
	if v == httpAddr {
		return "", usageErrorf("%s=%q is the address of the API (%s): give /metrics another one, or unset it to serve /metrics there", name, v, envHTTPAddr)
	}
	return v, nil
}

// serveMetrics serves h as GET /metrics, and nothing else, on addr. stop
// ends it, letting a scrape in flight finish for a moment.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, envMetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	// A scrape has no body and a short answer: tighter than the API's.
	srv := httpapi.NewHTTPServer(httpapi.SecurityHeaders(mux), httpapi.Timeouts{Read: 10 * time.Second, Write: 30 * time.Second})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics: the listener failed", "addr", addr, "err", err)
		}
	}()
	log.Info("metrics: /metrics is served on its own address only", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}
