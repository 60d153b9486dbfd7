package metrics

import "github.com/prometheus/client_golang/prometheus"

// RefusedConnections registers usersd_http_connections_refused_total and
// returns the function that counts one: a connection closed as soon as
// accepted because its client address held too many. Call it once.
func (m *Metrics) RefusedConnections() func() {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usersd_http_connections_refused_total",
		Help: "Connections closed as soon as accepted because their client address (an IPv6 /64) already held as many as allowed.",
	})
	m.Registry.MustRegister(c)
	return c.Inc
}
