package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/metrics"
)

func TestProjectionProgressIsExported(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	m.ObserveProjection("userlist", 500, now.Add(-3*time.Second), false, now)
	m.ObserveProjection("audit", 7, now, true, now)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`usersd_projection_events_applied_total{projection="userlist"} 500`,
		`usersd_projection_lag_seconds{projection="userlist"} 3`,
		`usersd_projection_caught_up{projection="audit"} 1`,
		`usersd_projection_lag_seconds{projection="audit"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
