// Package metrics exports usersd's Prometheus metrics.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds usersd's collectors in a registry of its own, so tests can
// make as many as they like.
type Metrics struct {
	Registry *prometheus.Registry

	projectionEvents   *prometheus.CounterVec
	projectionLag      *prometheus.GaugeVec
	projectionCaughtUp *prometheus.GaugeVec

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	commandOutcomes *prometheus.CounterVec
}

// New registers the collectors, with the Go runtime and process ones.
func New() *Metrics {
	m := &Metrics{
		Registry:           prometheus.NewRegistry(),
		projectionEvents:   counterVec("usersd_projection_events_applied_total", "Events applied by each projection.", "projection"),
		projectionLag:      gaugeVec("usersd_projection_lag_seconds", "How far behind the history each projection is: the age of the last event it applied while catching up, 0 once caught up.", "projection"),
		projectionCaughtUp: gaugeVec("usersd_projection_caught_up", "1 when the projection has applied everything stored, else 0.", "projection"),
		requests:           counterVec("usersd_http_requests_total", "HTTP requests answered, by method, route template and status.", "method", "route", "status"),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usersd_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by method and route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		commandOutcomes: counterVec("usersd_command_outcomes_total", "Use cases the application handled (every command, from the API, the mailer or the expiry, and the two queries) by name (invite_users, ...) and outcome: ok, the domain error's code (last_admin, rate_limited, ...), cancelled or internal.", "command", "outcome"),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.projectionEvents, m.projectionLag, m.projectionCaughtUp,
		m.requests, m.requestDuration, m.commandOutcomes,
	)
	return m
}

// counterVec and gaugeVec make a collector of the metric name, with help
// and the label names.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// ObserveProjection records a projection's progress after a batch.
func (m *Metrics) ObserveProjection(name string, applied int, lastEventAt time.Time, caughtUp bool, now time.Time) {
	m.projectionEvents.WithLabelValues(name).Add(float64(applied))
	lag := 0.0
	if !caughtUp && !lastEventAt.IsZero() {
		lag = now.Sub(lastEventAt).Seconds()
	}
	m.projectionLag.WithLabelValues(name).Set(lag)
	up := 0.0
	if caughtUp {
		up = 1
	}
	m.projectionCaughtUp.WithLabelValues(name).Set(up)
}

// ObserveRequest records one answered HTTP request. route is the matched
// route's template (never the path, which holds ids); the problem's code is
// counted by the application's decorator (ObserveCommand), not here.
func (m *Metrics) ObserveRequest(method, route string, status int, _ string, took time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(method, route).Observe(took.Seconds())
}

// ObserveCommand records one use case the application handled
// (commands.Observer): its name and outcome.
func (m *Metrics) ObserveCommand(name, outcome string, _ time.Duration) {
	m.commandOutcomes.WithLabelValues(name, outcome).Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
