package commands_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// webhookTargets refuses the host internal.example, as the adapter refuses
// private addresses.
type webhookTargets struct{}

func (webhookTargets) Check(_ context.Context, raw string) error {
	if u, err := url.Parse(raw); err != nil || u.Hostname() == "internal.example" {
		return &domain.Error{Code: domain.CodeWebhookURLForbidden, Field: "url", Message: "a private address"}
	}
	return nil
}

// webhookSecrets keeps secrets in memory.
type webhookSecrets struct {
	mu   sync.Mutex
	kept map[uuid.UUID][]byte
}

func (s *webhookSecrets) Store(_ context.Context, _, webhook uuid.UUID, secret []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept == nil {
		s.kept = make(map[uuid.UUID][]byte)
	}
	s.kept[webhook] = append([]byte(nil), secret...)
	return nil
}

func (s *webhookSecrets) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.kept)
}

func TestSubscribeWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws := e.createWorkspace("owner@example.com")
	c := e.app.Commands
	res, err := c.SubscribeWebhook.Handle(ctx, commands.SubscribeWebhook{
		WorkspaceID: ws.WorkspaceID, URL: "HTTPS://Hooks.Example.com/in", Events: []string{"UserInvited", "UserInvited"}, Meta: as(ws.OwnerUserID),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := strings.CutPrefix(res.Secret, commands.WebhookSecretPrefix)
	key, derr := base64.StdEncoding.DecodeString(raw)
	if !ok || derr != nil || len(key) != commands.WebhookSecretSize {
		t.Fatalf("secret %q: want whsec_ and the base64 of %d bytes", res.Secret, commands.WebhookSecretSize)
	}
	kept := e.deps.WebhookSecrets.(*webhookSecrets)
	if got := kept.kept[res.WebhookID]; string(got) != string(key) {
		t.Fatalf("the secret kept is not the one answered")
	}
	evs := streamEvents(t, e.store, eventstore.WorkspaceStream(ws.WorkspaceID))
	last := evs[len(evs)-1]
	want := domain.WebhookSubscribed{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, URL: "https://hooks.example.com/in", Events: []string{"UserInvited"}}
	if got, ok := last.Event.(domain.WebhookSubscribed); !ok || got.WebhookID != want.WebhookID || got.URL != want.URL || strings.Join(got.Events, ",") != "UserInvited" {
		t.Fatalf("last event %+v, want %+v", last.Event, want)
	}
	if last.Position != res.Position {
		t.Fatalf("position %v, want the event's %v", res.Position, last.Position)
	}
	if strings.Contains(string(mustEncode(t, last.Event)), raw) {
		t.Fatal("the event holds the secret")
	}

	// Refusals keep no secret and record nothing.
	before := kept.count()
	for _, c2 := range []struct {
		cmd  commands.SubscribeWebhook
		code domain.Code
	}{
		{commands.SubscribeWebhook{URL: "https://internal.example/x", Events: []string{"*"}, Meta: as(ws.OwnerUserID)}, domain.CodeWebhookURLForbidden},
		{commands.SubscribeWebhook{URL: "ftp://hooks.example.com/x", Events: []string{"*"}, Meta: as(ws.OwnerUserID)}, domain.CodeWebhookURLForbidden},
		{commands.SubscribeWebhook{URL: "https://hooks.example.com/x", Events: []string{"Nope"}, Meta: as(ws.OwnerUserID)}, domain.CodeInvalidInput},
		{commands.SubscribeWebhook{URL: "https://hooks.example.com/x", Events: []string{"*"}, Meta: as(uuid.New())}, domain.CodeWorkspaceNotFound},
		// A non-Admin learns nothing of where the URL leads.
		{commands.SubscribeWebhook{URL: "https://internal.example/x", Events: []string{"*"}, Meta: as(uuid.New())}, domain.CodeWorkspaceNotFound},
	} {
		c2.cmd.WorkspaceID = ws.WorkspaceID
		_, err := c.SubscribeWebhook.Handle(ctx, c2.cmd)
		wantCode(t, err, c2.code)
	}
	if kept.count() != before {
		t.Fatalf("refused subscriptions kept %d secrets", kept.count()-before)
	}
	if n := len(streamEvents(t, e.store, eventstore.WorkspaceStream(ws.WorkspaceID))); n != len(evs) {
		t.Fatalf("refused subscriptions recorded %d events", n-len(evs))
	}

	// Replay and removal.
	from := domain.Position{Commit: 3, Prepare: 1}
	if _, err := c.ReplayWebhook.Handle(ctx, commands.ReplayWebhook{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, From: from, Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveWebhook.Handle(ctx, commands.RemoveWebhook{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.RemoveWebhook.Handle(ctx, commands.RemoveWebhook{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, Meta: as(ws.OwnerUserID)})
	wantCode(t, err, domain.CodeWebhookNotFound)
	evs = streamEvents(t, e.store, eventstore.WorkspaceStream(ws.WorkspaceID))
	if got := evs[len(evs)-2].Event; got != (domain.WebhookReplayRequested{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, FromPosition: "3-1"}) {
		t.Fatalf("replay recorded %+v", got)
	}
	if got := evs[len(evs)-1].Event; got != (domain.WebhookRemoved{WorkspaceID: ws.WorkspaceID, WebhookID: res.WebhookID, URL: "https://hooks.example.com/in"}) {
		t.Fatalf("removal recorded %+v", got)
	}
}

// An application built without the webhook ports refuses to subscribe.
func TestSubscribeWebhookUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deps.WebhookTargets, e.deps.WebhookSecrets = nil, nil
	e.build()
	ws := e.createWorkspace("owner@example.com")
	_, err := e.app.Commands.SubscribeWebhook.Handle(context.Background(), commands.SubscribeWebhook{
		WorkspaceID: ws.WorkspaceID, URL: "https://hooks.example.com/in", Events: []string{"*"}, Meta: as(ws.OwnerUserID),
	})
	if err == nil || domain.ErrorCode(err) != "" {
		t.Fatalf("got %v, want an error that is no domain error", err)
	}
}

func mustEncode(t *testing.T, e domain.Event) []byte {
	t.Helper()
	b, err := domain.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
