package webhooks_test

import (
	"context"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	projwebhooks "github.com/usersd/usersd/projections/webhooks"
)

// The sweeper's tasks prune finished deliveries and poisoned messages past
// their retention, never a pending delivery nor a queued one.
func TestRetentionTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, webhooktest.Chaos{})
	ctx := context.Background()
	ws := e.workspace("acme")
	h := e.subscribe(ws, "/kept", "*")
	e.invite(ws, "ann@example.com", "bob@example.com")
	opts := e.options()
	stop := e.run(opts)
	eventually(t, "three deliveries queued", func() bool {
		var n int
		return e.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&n) == nil && n == 3
	})
	stop()
	// One delivered 8 days ago, one failed a minute ago, one pending for 8
	// days; a poisoned message of a month ago and one of today.
	if _, err := e.pool.Exec(ctx, `
		WITH d AS (SELECT delivery_id, row_number() OVER (ORDER BY seq) AS n FROM webhook_deliveries)
		UPDATE webhook_deliveries w SET
			status = CASE d.n WHEN 1 THEN 'delivered' WHEN 2 THEN 'failed' ELSE 'pending' END,
			last_attempt_at = CASE d.n WHEN 2 THEN now() - interval '1 minute' ELSE now() - interval '8 days' END,
			created_at = now() - interval '8 days'
		FROM d WHERE w.delivery_id = d.delivery_id`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO watermill_webhook_deliveries_poison (uuid, payload, metadata, created_at)
		VALUES ('old', '{}', '{}', now() - interval '31 days'), ('new', '{}', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	queued := count(t, e, `SELECT count(*) FROM watermill_webhook_deliveries`)
	for _, task := range webhooks.RetentionTasks(7*24*time.Hour, 30*24*time.Hour) {
		if _, err := task.Prune(ctx, e.pool, 1); err != nil {
			t.Fatalf("%s: %v", task.Kind, err)
		}
	}
	page, err := projwebhooks.NewQueries(e.pool).Deliveries(ctx, ws.WorkspaceID, h.id, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, d := range page.Items {
		statuses = append(statuses, d.Status)
	}
	if len(statuses) != 2 || statuses[0] != projwebhooks.StatusPending || statuses[1] != projwebhooks.StatusFailed {
		t.Fatalf("log after the sweep: %v, want the pending and the recent failed one", statuses)
	}
	if got := count(t, e, `SELECT count(*) FROM watermill_webhook_deliveries_poison WHERE uuid = 'new'`); got != 1 ||
		count(t, e, `SELECT count(*) FROM watermill_webhook_deliveries_poison`) != 1 {
		t.Fatal("the poison queue after the sweep: want only today's message")
	}
	if got := count(t, e, `SELECT count(*) FROM watermill_webhook_deliveries`); got != queued {
		t.Fatalf("queue after the sweep: %d, want the %d queued", got, queued)
	}
}

func count(t *testing.T, e *env, sql string) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
