package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/domain"
)

// envWebhookAllowPrivate lets webhooks call private, loopback and
// link-local addresses (docs/integrations.md, docs/threat-model.md).
const envWebhookAllowPrivate = "USERSD_WEBHOOK_ALLOW_PRIVATE"

// webhookAllowPrivate reads USERSD_WEBHOOK_ALLOW_PRIVATE: true or false,
// default false.
func webhookAllowPrivate(getenv func(string) string) (bool, error) {
	v, src := webhookAllowPrivateSetting.trimmed(nil, getenv)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageErrorf("%s=%q: want true or false", src, v)
	}
	return b, nil
}

// webhookSecretsOf is the codec's key store's webhook secrets: the KEK
// that wraps the data keys wraps them too.
func webhookSecretsOf(codec *eventstore.Codec) (keystore.WebhookSecrets, error) {
	ring, ok := codec.Keys().(*keystore.Keyring)
	if !ok {
		return keystore.WebhookSecrets{}, fmt.Errorf("webhook secrets need the key store, not %T", codec.Keys())
	}
	return ring.WebhookSecrets(), nil
}

// webhookOpener opens an event as the store keeps it with codec, as a
// read of the store would.
func webhookOpener(codec *eventstore.Codec) webhooks.Opener {
	return func(ctx context.Context, typ string, version int, data []byte) (domain.RecordedEvent, error) {
		return codec.DecodeOne(ctx, eventstore.RecordedEvent{
			Type: typ, Data: data, Metadata: fmt.Appendf(nil, `{"schemaVersion":%d}`, version),
		})
	}
}

// startWebhooks runs the webhooks' dispatcher and sender until ctx ends:
// wait waits for them to stop, health is the dispatcher's.
func startWebhooks(ctx context.Context, pool *pgxpool.Pool, src eventstore.Source, allowPrivate bool, log *slog.Logger) (wait func(), health func(context.Context) error, err error) {
	secrets, err := webhookSecretsOf(src.Codec)
	if err != nil {
		return nil, nil, err
	}
	if allowPrivate {
		log.Warn("webhooks: " + envWebhookAllowPrivate + "=true: webhooks may call private, loopback and link-local addresses (this host and its network included)")
	}
	svc, err := webhooks.New(pool, src, secrets, webhookOpener(src.Codec), webhooks.Options{Logger: log, AllowPrivate: allowPrivate})
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("webhooks: stopped", "err", err)
		}
	}()
	return func() { <-done }, svc.Health, nil
}
