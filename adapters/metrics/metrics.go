// Package metrics exports usersd's Prometheus metrics.
package metrics

import (
	"net/http"
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
}

// New registers the collectors, with the Go runtime and process ones.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		projectionEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_projection_events_applied_total",
			Help: "Events applied by each projection.",
		}, []string{"projection"}),
		projectionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersd_projection_lag_seconds",
			Help: "How far behind the history each projection is: the age of the last event it applied while catching up, 0 once caught up.",
		}, []string{"projection"}),
		projectionCaughtUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersd_projection_caught_up",
			Help: "1 when the projection has applied everything stored, else 0.",
		}, []string{"projection"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.projectionEvents, m.projectionLag, m.projectionCaughtUp,
	)
	return m
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

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
