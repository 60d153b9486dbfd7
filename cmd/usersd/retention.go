package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/metrics"
	"github.com/usersd/usersd/commands"
)

// Retention of the operational tables (docs/retention.md): how long the
// sweeper keeps each kind of row once nothing needs it, and how often it
// sweeps.
const (
	envRetentionInterval   = "USERSD_RETENTION_INTERVAL"
	envPoisonRetention     = "USERSD_POISON_RETENTION"
	envDeliveryRetention   = "USERSD_DELIVERY_RETENTION"
	envDevMailboxRetention = "USERSD_DEV_MAILBOX_RETENTION"
	// envWebhookDeliveryRetention keeps a webhook delivery in its log once
	// delivered or failed (the poison queues share USERSD_POISON_RETENTION).
	envWebhookDeliveryRetention = "USERSD_WEBHOOK_DELIVERY_RETENTION"
)

// retentionConfig is what the sweeper reads.
type retentionConfig struct {
	interval time.Duration
	keep     messaging.Retention
	// webhookDeliveries is how long the webhooks' log keeps a finished
	// delivery.
	webhookDeliveries time.Duration
}

// readRetention reads the retentions (Go durations, 0 or more: 0 prunes as
// soon as nothing needs a row) and the interval (positive).
func readRetention(getenv func(string) string) (retentionConfig, error) {
	var c retentionConfig
	var err error
	if c.interval, err = retentionDuration(retentionIntervalSetting, getenv, true); err != nil {
		return c, err
	}
	if c.keep.Poison, err = retentionDuration(poisonRetentionSetting, getenv, false); err != nil {
		return c, err
	}
	if c.keep.Deliveries, err = retentionDuration(deliveryRetentionSetting, getenv, false); err != nil {
		return c, err
	}
	if c.keep.DevMailbox, err = retentionDuration(devMailboxRetentionSetting, getenv, false); err != nil {
		return c, err
	}
	if c.webhookDeliveries, err = retentionDuration(webhookDeliveryRetentionSetting, getenv, false); err != nil {
		return c, err
	}
	return c, nil
}

func retentionDuration(s setting, getenv func(string) string, positive bool) (time.Duration, error) {
	v, src := s.trimmed(nil, getenv)
	d, err := time.ParseDuration(v)
	switch {
	case err != nil, d < 0:
		return 0, usageErrorf("%s=%q: want a Go duration such as %s, 0 or more", src, v, s.def)
	case positive && d == 0:
		return 0, usageErrorf("%s=%q: want a positive Go duration such as %s", src, v, s.def)
	}
	return d, nil
}

// retentionTasks are the operational tables the sweeper prunes beyond the
// e-mail pipeline's, which messaging.NewSweeper prunes itself: a new
// pipeline's log adds its messaging.RetentionTask here (PruneOlderThan for
// rows kept for a time), with a setting of its own for its retention, and
// `usersd status` reports its tables too. The webhooks' log, poison queue
// and queue.
func retentionTasks(c retentionConfig) []messaging.RetentionTask {
	return webhooks.RetentionTasks(c.webhookDeliveries, c.keep.Poison)
}

// operationalTables are the tables `usersd status` reports: those the
// sweeper prunes.
func operationalTables() []messaging.OperationalTable {
	return append(messaging.EmailTables(), messaging.TablesOf(retentionTasks(retentionConfig{}))...)
}

// startRetention runs the retention sweeper until ctx ends (one replica at
// a time sweeps) and answers the function that waits for it to stop.
func startRetention(ctx context.Context, e *env, pool *pgxpool.Pool, app commands.Application, cfg retentionConfig, m *metrics.Metrics) (wait func()) {
	s := messaging.NewSweeper(pool, app.Queries.ComposeInvitationEmails, app.Commands.RecordEmailOutcomes, messaging.SweeperOptions{
		Retention: cfg.keep, Interval: cfg.interval, Tasks: retentionTasks(cfg), Observer: m.Retention(), Logger: e.Log,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			e.Log.Error("retention: stopped", "err", err)
		}
	}()
	return func() { <-done }
}
