package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RetentionMetrics are the retention sweeper's (messaging.Sweeper, whose
// RetentionObserver they are): what each sweep pruned, and the size of
// each operational table after it. Only the replica that sweeps reports
// them.
type RetentionMetrics struct {
	pruned     *prometheus.CounterVec
	lastPruned *prometheus.GaugeVec
	failures   *prometheus.CounterVec
	lastSweep  prometheus.Gauge
	rows       *prometheus.GaugeVec
	bytes      *prometheus.GaugeVec
	oldest     *prometheus.GaugeVec
}

// Retention registers the sweeper's metrics and returns them. Call it once.
func (m *Metrics) Retention() *RetentionMetrics {
	r := &RetentionMetrics{
		pruned:     counterVec("usersd_retention_pruned_rows_total", "Rows the retention sweeper deleted, by kind (outbox, poison, deliveries, dev_mailbox, ...).", "kind"),
		lastPruned: gaugeVec("usersd_retention_last_pruned_rows", "Rows the last sweep deleted, by kind.", "kind"),
		failures:   counterVec("usersd_retention_sweep_failures_total", "Sweeps whose pruning of a kind failed (the next sweep tries again), by kind.", "kind"),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{Name: "usersd_retention_last_sweep_timestamp_seconds",
			Help: "When the last sweep ended (Unix time); it stops moving when no replica sweeps."}),
		rows:   gaugeVec("usersd_operational_table_rows", "Rows of each operational table (the outbox's partitions, the poison queue, the delivery log, the development mailbox), after the last sweep.", "table"),
		bytes:  gaugeVec("usersd_operational_table_bytes", "Size of each operational table with its indexes and TOAST, after the last sweep.", "table"),
		oldest: gaugeVec("usersd_operational_table_oldest_row_age_seconds", "Age of the oldest row of each operational table after the last sweep (0 when empty).", "table"),
	}
	m.Registry.MustRegister(r.pruned, r.lastPruned, r.failures, r.lastSweep, r.rows, r.bytes, r.oldest)
	return r
}

// ObserveRetentionSweep records what one sweep pruned of kind.
func (r *RetentionMetrics) ObserveRetentionSweep(kind string, pruned int64, failed bool) {
	r.pruned.WithLabelValues(kind).Add(float64(pruned))
	r.lastPruned.WithLabelValues(kind).Set(float64(pruned))
	if failed {
		r.failures.WithLabelValues(kind).Inc()
	}
	r.lastSweep.SetToCurrentTime()
}

// ObserveOperationalTable records a table's size after a sweep.
func (r *RetentionMetrics) ObserveOperationalTable(table string, rows, bytes int64, oldest time.Duration) {
	r.rows.WithLabelValues(table).Set(float64(rows))
	r.bytes.WithLabelValues(table).Set(float64(bytes))
	r.oldest.WithLabelValues(table).Set(oldest.Seconds())
}
