package webhooks_test

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/adapters/messaging/webhooks/webhooktest"
	"github.com/usersd/usersd/domain"
)

// The example of the Standard Webhooks specification.
func TestSignKnownAnswer(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	got := webhooks.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign: got %s, want %s", got, want)
	}
}

func TestSignVerifies(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	now := time.Now()
	id, body := uuid.NewString(), []byte(`{"type":"UserInvited"}`)
	ts := now.Unix()
	sig := webhooks.Sign(key, id, now, body)
	if err := webhooktest.Verify(secret, id, itoa(ts), sig, body, now, 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for name, bad := range map[string]func() error{
		"another body": func() error { return webhooktest.Verify(secret, id, itoa(ts), sig, []byte(`{}`), now, 5*time.Minute) },
		"another id": func() error {
			return webhooktest.Verify(secret, uuid.NewString(), itoa(ts), sig, body, now, 5*time.Minute)
		},
		"another timestamp": func() error { return webhooktest.Verify(secret, id, itoa(ts+1), sig, body, now, 5*time.Minute) },
		"another secret": func() error {
			return webhooktest.Verify("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), id, itoa(ts), sig, body, now, 5*time.Minute)
		},
		"too old": func() error {
			return webhooktest.Verify(secret, id, itoa(ts), sig, body, now.Add(time.Hour), 5*time.Minute)
		},
	} {
		if bad() == nil {
			t.Errorf("%s: verified, want a refusal", name)
		}
	}
	// Several signatures (a receiver rotating secrets): one must match.
	if err := webhooktest.Verify(secret, id, itoa(ts), "v1,AAAA "+sig, body, now, 5*time.Minute); err != nil {
		t.Errorf("with another signature first: %v", err)
	}
}

func TestBody(t *testing.T) {
	t.Parallel()
	ws, user, ev := uuid.New(), uuid.New(), uuid.New()
	at := time.Date(2026, 3, 4, 5, 6, 7, 800, time.UTC)
	rec := domain.RecordedEvent{
		Envelope: domain.Envelope{Event: domain.UserInvited{WorkspaceID: ws, UserID: user, Email: "ann@example.com", Role: "Editor", TokenHash: "HASH"},
			Metadata: domain.Metadata{EventID: ev, OccurredAt: at}},
		Position: domain.Position{Commit: 12, Prepare: 3},
	}
	b, err := webhooks.Body(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type      string         `json:"type"`
		Timestamp string         `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Type != "UserInvited" || got.Timestamp != "2026-03-04T05:06:07.0000008Z" {
		t.Errorf("type, timestamp: %q, %q", got.Type, got.Timestamp)
	}
	for k, want := range map[string]any{"position": "12-3", "eventId": ev.String(), "workspaceId": ws.String(), "userId": user.String(), "email": "ann@example.com", "role": "Editor"} {
		if got.Data[k] != want {
			t.Errorf("data.%s: %v, want %v", k, got.Data[k], want)
		}
	}
	if _, ok := got.Data["tokenHash"]; ok {
		t.Error("data holds the token's hash")
	}

	// An erased person's values are null, as in the event feed.
	rec.Event = domain.UserInvited{WorkspaceID: ws, UserID: user, Role: "Editor"}
	rec.Erased = []uuid.UUID{user}
	if b, err = webhooks.Body(rec); err != nil {
		t.Fatal(err)
	}
	got.Data = nil
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Data["email"]; !ok || v != nil || got.Data["userId"] != user.String() {
		t.Errorf("an erased person's invitation: %v, want email null and the user id", got.Data)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
