package keystore

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/pii"
)

// ErrNoWebhookSecret answers the secret of a webhook that has none: never
// subscribed, or removed.
var ErrNoWebhookSecret = errors.New("the webhook has no secret")

// WebhookSecrets keeps the webhooks' signing secrets in the table
// webhook_secrets, wrapped under the KEK like the data keys: the
// commands.WebhookSecrets the subscription stores through, and what the
// sender signs with. The dispatcher deletes a removed webhook's row.
type WebhookSecrets struct{ k *Keyring }

// WebhookSecrets is the keyring's store of webhook secrets.
func (k *Keyring) WebhookSecrets() WebhookSecrets { return WebhookSecrets{k} }

// webhookSecretName is what a webhook's secret is wrapped for (its
// additional data): a secret cannot pass for another webhook's.
func webhookSecretName(webhook string) string { return "webhook-secret/" + webhook }

// Store keeps webhook's secret, wrapped under the current KEK.
func (s WebhookSecrets) Store(ctx context.Context, workspace, webhook uuid.UUID, secret []byte) error {
	_, err := s.k.pool.Exec(ctx, `INSERT INTO webhook_secrets (webhook_id, workspace_id, wrapped, kek_id) VALUES ($1, $2, $3, $4)`,
		webhook, workspace, pii.WrapServerKey(s.k.current, webhookSecretName(webhook.String()), secret), s.k.current.ID())
	if err != nil {
		return fmt.Errorf("store the secret of webhook %s: %w", webhook, err)
	}
	return nil
}

// Secret answers webhook's secret; ErrNoWebhookSecret when it has none.
func (s WebhookSecrets) Secret(ctx context.Context, webhook uuid.UUID) ([]byte, error) {
	var (
		wrapped []byte
		kekID   string
	)
	err := s.k.pool.QueryRow(ctx, `SELECT wrapped, kek_id FROM webhook_secrets WHERE webhook_id = $1`, webhook).Scan(&wrapped, &kekID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("webhook %s: %w", webhook, ErrNoWebhookSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("the secret of webhook %s: %w", webhook, err)
	}
	kek, ok := s.k.byID[kekID]
	if !ok {
		return nil, fmt.Errorf("the secret of webhook %s: %w", webhook, &UnknownKEKError{IDs: []string{kekID}})
	}
	return pii.UnwrapServerKey(kek, webhookSecretName(webhook.String()), wrapped)
}
