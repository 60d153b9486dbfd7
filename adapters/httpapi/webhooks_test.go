package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// An Admin subscribes a URL, sees it listed without its secret and its
// deliveries logged, asks for a replay and removes it; each is an event in
// the audit history.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	withWebhookDispatcher(t)
	a, ws, _, adm := newAdminWorkspace(t, "Hooks", "admin@hooks.test")
	base := "/v1/workspaces/" + ws.String() + "/webhooks"
	var sub struct{ WebhookID, Secret, Position string }
	a.must(t, http.StatusCreated, req{method: "POST", path: base, token: adm,
		body: map[string]any{"url": "https://203.0.113.10/usersd?team=7", "events": []string{"UserInvited", "RoleChanged"}}}).json(t, &sub)
	if !strings.HasPrefix(sub.Secret, "whsec_") || len(sub.Secret) < 40 {
		t.Fatalf("secret %q: want whsec_ and the base64 of 32 bytes", sub.Secret)
	}
	var list struct {
		Items []struct {
			WebhookID, URL, CreatedAt string
			Events                    []string
		}
	}
	r := a.must(t, http.StatusOK, req{method: "GET", path: base, token: adm, headers: consistent(sub.Position)})
	r.json(t, &list)
	if len(list.Items) != 1 || list.Items[0].WebhookID != sub.WebhookID || list.Items[0].URL != "https://203.0.113.10/usersd?team=7" ||
		strings.Join(list.Items[0].Events, ",") != "UserInvited,RoleChanged" {
		t.Fatalf("list: %s", r.body)
	}
	if strings.Contains(string(r.body), sub.Secret[len("whsec_"):]) || strings.Contains(string(r.body), "secret") {
		t.Fatalf("the list shows the secret: %s", r.body)
	}

	_, pos := a.invite(t, ws, adm, "ann@hooks.test", "Editor")
	var log struct {
		Items []struct {
			DeliveryID, EventID, Type, Status, Position string
			Attempts                                    int
			LastStatusCode                              *int
			LastAttemptAt                               *string
		}
		NextCursor *string
	}
	a.must(t, http.StatusOK, req{method: "GET", path: base + "/" + sub.WebhookID + "/deliveries", token: adm, headers: consistent(pos)}).json(t, &log)
	if len(log.Items) != 1 || log.Items[0].Type != "UserInvited" || log.Items[0].Status != "pending" || log.Items[0].Attempts != 0 ||
		log.Items[0].LastStatusCode != nil || log.Items[0].LastAttemptAt != nil || log.NextCursor != nil {
		t.Fatalf("log: %+v (no sender runs: one pending delivery)", log)
	}

	var replay struct{ Position string }
	a.must(t, http.StatusAccepted, req{method: "POST", path: base + "/" + sub.WebhookID + "/replay", token: adm,
		body: map[string]string{"fromPosition": sub.Position}}).json(t, &replay)
	a.must(t, http.StatusOK, req{method: "DELETE", path: base + "/" + sub.WebhookID, token: adm})
	r = a.do(t, req{method: "DELETE", path: base + "/" + sub.WebhookID, token: adm})
	if r.status != http.StatusNotFound || r.code() != "webhook_not_found" {
		t.Fatalf("removing twice: %d %s", r.status, r.body)
	}
	var audit struct {
		Items []struct {
			Action  string
			Details map[string]any
		}
	}
	_, pos = a.invite(t, ws, adm, "bob@hooks.test", "Editor")
	a.must(t, http.StatusOK, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit?limit=500", token: adm, headers: consistent(pos)}).json(t, &audit)
	seen := map[string]map[string]any{}
	for _, e := range audit.Items {
		seen[e.Action] = e.Details
	}
	for _, action := range []string{"WebhookSubscribed", "WebhookReplayRequested", "WebhookRemoved"} {
		if d := seen[action]; d == nil || d["webhookId"] != sub.WebhookID {
			t.Errorf("audit: %s %v, want an entry about the webhook", action, d)
		}
	}
	if u := seen["WebhookSubscribed"]["url"]; u != "https://203.0.113.10/usersd?…" {
		t.Errorf("audit of the subscription: url %v, want it without its query", u)
	}
	a.must(t, http.StatusOK, req{method: "GET", path: base, token: adm, headers: consistent(pos)}).json(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("list after the removal: %+v", list.Items)
	}
	r = a.do(t, req{method: "GET", path: base + "/" + uuid.NewString() + "/deliveries", token: adm})
	if r.status != http.StatusNotFound || r.code() != "webhook_not_found" {
		t.Fatalf("the log of an unknown webhook: %d %s", r.status, r.body)
	}
}

// A workspace has at most 20 webhooks.
func TestWebhookLimit(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Many hooks", "admin@many.test")
	base := "/v1/workspaces/" + ws.String() + "/webhooks"
	for range 20 {
		a.must(t, http.StatusCreated, req{method: "POST", path: base, token: adm, body: map[string]any{"url": "https://203.0.113.10/x", "events": []string{"*"}}})
	}
	a.refused(t, "the 21st webhook", req{method: "POST", path: base, token: adm, body: map[string]any{"url": "https://203.0.113.10/x", "events": []string{"*"}}},
		http.StatusConflict, "webhook_limit", "", "")
}
