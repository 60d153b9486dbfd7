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
	wantExported(t, m,
		`usersd_projection_events_applied_total{projection="userlist"} 500`,
		`usersd_projection_lag_seconds{projection="userlist"} 3`,
		`usersd_projection_caught_up{projection="audit"} 1`,
		`usersd_projection_lag_seconds{projection="audit"} 0`,
		`go_goroutines`,
	)
}

func TestRequestsAndCommandOutcomesAreExported(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.ObserveRequest("GET", "/v1/workspaces/{ws}/users", 200, "", 3*time.Millisecond)
	m.ObserveRequest("PUT", "/v1/workspaces/{ws}/users/{userId}/role", 200, "", 5*time.Millisecond)
	m.ObserveRequest("PUT", "/v1/workspaces/{ws}/users/{userId}/role", 409, "last_admin", 2*time.Millisecond)
	m.ObserveCommand("change_role", "ok", 4*time.Millisecond)
	m.ObserveCommand("change_role", "last_admin", time.Millisecond)
	body := wantExported(t, m,
		`usersd_http_requests_total{method="GET",route="/v1/workspaces/{ws}/users",status="200"} 1`,
		`usersd_http_request_duration_seconds_count{method="PUT",route="/v1/workspaces/{ws}/users/{userId}/role"} 2`,
		`usersd_command_outcomes_total{command="change_role",outcome="ok"} 1`,
		`usersd_command_outcomes_total{command="change_role",outcome="last_admin"} 1`,
	)
	if strings.Contains(body, `command="PUT`) || strings.Contains(body, `command="GET`) {
		t.Error("a request counted as a command: the application counts its commands itself")
	}
}

func TestRetentionIsExported(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	r := m.Retention()
	r.ObserveRetentionSweep("outbox", 120, false)
	r.ObserveRetentionSweep("outbox", 30, false)
	r.ObserveRetentionSweep("poison", 0, true)
	r.ObserveOperationalTable("mail_deliveries", 42, 16384, 90*time.Second)
	wantExported(t, m,
		`usersd_retention_pruned_rows_total{kind="outbox"} 150`,
		`usersd_retention_last_pruned_rows{kind="outbox"} 30`,
		`usersd_retention_sweep_failures_total{kind="poison"} 1`,
		`usersd_retention_last_sweep_timestamp_seconds `,
		`usersd_operational_table_rows{table="mail_deliveries"} 42`,
		`usersd_operational_table_bytes{table="mail_deliveries"} 16384`,
		`usersd_operational_table_oldest_row_age_seconds{table="mail_deliveries"} 90`,
	)
}

// wantExported scrapes m's handler, fails the test for each of want the
// page lacks, and answers the page.
func wantExported(t *testing.T, m *metrics.Metrics, want ...string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	return string(body)
}
