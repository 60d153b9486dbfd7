package commands

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// WebhookTargets checks where a webhook may send: the adapter resolves the
// URL's host and refuses private, loopback, link-local and metadata
// addresses (unless the operator allows them), answering a
// domain.CodeWebhookURLForbidden error about "url".
type WebhookTargets interface {
	Check(ctx context.Context, url string) error
}

// WebhookSecrets keeps webhook secrets, encrypted at rest: the only copy
// besides the one SubscribeWebhook answers once.
type WebhookSecrets interface {
	Store(ctx context.Context, workspace, webhook uuid.UUID, secret []byte) error
}

// WebhookSecretSize is how many random bytes a webhook secret has.
const WebhookSecretSize = 32

// WebhookSecretPrefix starts a webhook secret as Standard Webhooks spell
// it: "whsec_" + base64 of the bytes that key the signatures.
const WebhookSecretPrefix = "whsec_"

// SubscribeWebhook subscribes a URL to some of a workspace's events.
type SubscribeWebhook struct {
	WorkspaceID uuid.UUID
	URL         string
	Events      []string
	Meta        Meta
}

// SubscribeWebhookResult carries the webhook's secret, shown once: only its
// encrypted copy is kept.
type SubscribeWebhookResult struct {
	WebhookID uuid.UUID
	Secret    string
	Position  domain.Position
}

type SubscribeWebhookHandler struct {
	w       writer
	targets WebhookTargets
	secrets WebhookSecrets
}

func NewSubscribeWebhookHandler(repo WorkspaceRepository, clock Clock, ids IDs, targets WebhookTargets, secrets WebhookSecrets) SubscribeWebhookHandler {
	if targets == nil || secrets == nil {
		panic("commands: SubscribeWebhook needs the webhook targets and secrets")
	}
	return SubscribeWebhookHandler{newWriter(repo, clock, ids), targets, secrets}
}

func (h SubscribeWebhookHandler) Handle(ctx context.Context, cmd SubscribeWebhook) (SubscribeWebhookResult, error) {
	url, err := domain.ParseWebhookURL(cmd.URL)
	if err != nil {
		return SubscribeWebhookResult{}, err
	}
	events, err := domain.ParseWebhookEvents(cmd.Events)
	if err != nil {
		return SubscribeWebhookResult{}, err
	}
	actor := cmd.Meta.Actor.UserID
	// Prepare: who may (before any address is resolved or secret kept),
	// where the URL leads, the id and the secret.
	if err := h.w.repo.View(ctx, cmd.WorkspaceID, func(w *domain.Workspace) error { return w.CheckSubscribeWebhook(actor) }); err != nil {
		return SubscribeWebhookResult{}, err
	}
	if err := h.targets.Check(ctx, url); err != nil {
		return SubscribeWebhookResult{}, err
	}
	id := h.w.ids.NewID()
	secret := make([]byte, WebhookSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return SubscribeWebhookResult{}, fmt.Errorf("a webhook secret: %w", err)
	}
	if err := h.secrets.Store(ctx, cmd.WorkspaceID, id, secret); err != nil {
		return SubscribeWebhookResult{}, fmt.Errorf("store the secret of webhook %s: %w", id, err)
	}
	pos, err := h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.SubscribeWebhook(actor, id, url, events)
	})
	if err != nil {
		return SubscribeWebhookResult{}, err
	}
	return SubscribeWebhookResult{WebhookID: id, Secret: WebhookSecretPrefix + base64.StdEncoding.EncodeToString(secret), Position: pos}, nil
}

// RemoveWebhook ends a webhook: nothing more is delivered to it.
type RemoveWebhook struct {
	WorkspaceID uuid.UUID
	WebhookID   uuid.UUID
	Meta        Meta
}

func (c RemoveWebhook) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type RemoveWebhookHandler = workspaceHandler[RemoveWebhook, domain.Position]

func NewRemoveWebhookHandler(repo WorkspaceRepository, clock Clock, ids IDs) RemoveWebhookHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd RemoveWebhook) error {
		return w.RemoveWebhook(cmd.Meta.Actor.UserID, cmd.WebhookID)
	})
}

// ReplayWebhook asks for the workspace's events after From (the zero
// Position: from the start) to be delivered to a webhook again.
type ReplayWebhook struct {
	WorkspaceID uuid.UUID
	WebhookID   uuid.UUID
	From        domain.Position
	Meta        Meta
}

func (c ReplayWebhook) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type ReplayWebhookHandler = workspaceHandler[ReplayWebhook, domain.Position]

func NewReplayWebhookHandler(repo WorkspaceRepository, clock Clock, ids IDs) ReplayWebhookHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd ReplayWebhook) error {
		return w.ReplayWebhook(cmd.Meta.Actor.UserID, cmd.WebhookID, cmd.From)
	})
}

// errWebhooksUnavailable is SubscribeWebhook's error in an application
// built without the webhook ports (tools and tests that never subscribe).
var errWebhooksUnavailable = errors.New("webhooks are not configured in this process")

type unavailableWebhooks struct{}

func (unavailableWebhooks) Handle(context.Context, SubscribeWebhook) (SubscribeWebhookResult, error) {
	return SubscribeWebhookResult{}, errWebhooksUnavailable
}

// newSubscribeWebhook builds SubscribeWebhook, or, without its ports, a
// handler that refuses every subscription.
func newSubscribeWebhook(d Deps) Handler[SubscribeWebhook, SubscribeWebhookResult] {
	if d.WebhookTargets == nil || d.WebhookSecrets == nil {
		return unavailableWebhooks{}
	}
	return NewSubscribeWebhookHandler(d.Workspaces, d.Clock, d.IDs, d.WebhookTargets, d.WebhookSecrets)
}
