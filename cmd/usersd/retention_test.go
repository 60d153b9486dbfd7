package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

func TestRetentionSettings(t *testing.T) {
	t.Parallel()
	got, err := readRetention(func(string) string { return "" })
	want := retentionConfig{interval: time.Minute, keep: messaging.DefaultRetention(), webhookDeliveries: 7 * 24 * time.Hour}
	if err != nil || got != want {
		t.Errorf("defaults: %+v, %v; want %+v", got, err, want)
	}
	vars := map[string]string{envRetentionInterval: " 10s ", envPoisonRetention: "0s", envDeliveryRetention: "1h30m", envDevMailboxRetention: "48h",
		envWebhookDeliveryRetention: "72h"}
	got, err = readRetention(func(k string) string { return vars[k] })
	want = retentionConfig{interval: 10 * time.Second, keep: messaging.Retention{Poison: 0, Deliveries: 90 * time.Minute, DevMailbox: 48 * time.Hour},
		webhookDeliveries: 72 * time.Hour}
	if err != nil || got != want {
		t.Errorf("%v: %+v, %v; want %+v", vars, got, err, want)
	}
	for k, v := range map[string]string{envRetentionInterval: "0s", envPoisonRetention: "a month", envDeliveryRetention: "-1h", envDevMailboxRetention: "7d",
		envWebhookDeliveryRetention: "a week"} {
		if _, err := readRetention(func(x string) string {
			if x == k {
				return v
			}
			return ""
		}); err == nil || !strings.Contains(err.Error(), k+"=") {
			t.Errorf("%s=%q: got %v, want an error naming it", k, v, err)
		}
	}
}

// usersd serve sweeps: an old development-mailbox message goes, /metrics
// shows what was pruned and the tables' sizes, and usersd status prints
// both.
func TestServeSweepsAndStatusTells(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := pgtest.New(t)
	if _, err := pool.Exec(ctx, `INSERT INTO dev_mailbox (id, workspace_id, invitation_id, attempt, to_address, subject, text_body, html_body, sent_at)
		VALUES ($1, $2, $3, 1, 'old@example.com', 's', 't', 'h', now() - interval '8 days')`, uuid.New(), uuid.New(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	s := startServingOn(t, map[string]string{"DATABASE_URL": dbURL, "USERSD_JWT_SECRET": testJWTSecret, "USERSD_DEV_MAILBOX": "true",
		envRetentionInterval: "50ms"})
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM dev_mailbox WHERE to_address = 'old@example.com'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the week-old mailbox message is still there after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The sweep records what it pruned once its deletes are done: the
	// metrics follow the row's disappearance.
	wants := []string{
		`usersd_retention_pruned_rows_total{kind="dev_mailbox"} 1`,
		`usersd_operational_table_rows{table="mail_deliveries"}`,
		`usersd_operational_table_bytes{table="watermill_invitation_emails_p3"}`,
		`usersd_operational_table_oldest_row_age_seconds{table="watermill_invitation_emails_poison"}`,
	}
	for {
		res, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var lacking []string
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				lacking = append(lacking, want)
			}
		}
		if len(lacking) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q", lacking)
		}
		time.Sleep(50 * time.Millisecond)
	}

	got := runUsersd(t, nil, "status", "-database-url", dbURL)
	if got.code != exitOK {
		t.Fatalf("usersd status: exit %d, stderr %s", got.code, got.stderr)
	}
	for _, want := range []string{"Operational tables:", "watermill_invitation_emails_p1", "mail_deliveries", "Retention sweeps:", "dev_mailbox"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("usersd status lacks %q:\n%s", want, got.stdout)
		}
	}
	var sweptBox bool
	for _, line := range strings.Split(got.stdout, "\n") {
		f := strings.Fields(line)
		// kind, last sweep, ago, pruned, in all
		if len(f) == 5 && f[0] == "dev_mailbox" && f[4] == "1" {
			sweptBox = true
		}
	}
	if !sweptBox {
		t.Errorf("usersd status does not show the mailbox message pruned:\n%s", got.stdout)
	}
}

func TestStatusPrintsSizes(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	err := printStatus(&b, []messaging.TableStats{
		{Name: "mail_deliveries", Rows: 1200, Bytes: 3 << 20, Oldest: 90*time.Minute + 400*time.Millisecond},
		{Name: "dev_mailbox", Bytes: 8192},
	}, []messaging.SweepRecord{{Kind: "deliveries", LastRunAt: now.Add(-12 * time.Second), LastPruned: 3, TotalPruned: 40, LastError: "boom"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	for _, want := range []string{"mail_deliveries 1200 3.0 MB 1h30m0s", "dev_mailbox 0 8.0 kB -", "deliveries 2026-03-01T11:59:48Z 12s 3 40", "the last sweep of deliveries failed: boom"} {
		if !slices.Contains(lines, want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
