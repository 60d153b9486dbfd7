package domain_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

const hookURL = "https://hooks.example.com/usersd"

func subscribed(id uuid.UUID, url string, events ...string) domain.WebhookSubscribed {
	return domain.WebhookSubscribed{WorkspaceID: wsID, WebhookID: id, URL: url, Events: events}
}

func subscribe(actor person, id uuid.UUID, url string, events ...string) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.SubscribeWebhook(actor.id, id, url, events) }
}

func hook(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("0b000000-0000-4000-8000-%012d", n))
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	withHook := evs(team(), subscribed(hookID, hookURL, "*"))
	full := team()
	for i := range domain.MaxWebhooks {
		full = append(full, subscribed(hook(100+i), hookURL, "*"))
	}
	runSpecs(t, []spec{
		{
			name:  "an Admin subscribes a URL",
			given: team(),
			when:  subscribe(owner, hookID, hookURL, "UserInvited", "RoleChanged"),
			then:  evs(subscribed(hookID, hookURL, "UserInvited", "RoleChanged")),
			check: func(t *testing.T, w *domain.Workspace) {
				got, ok := w.Webhook(hookID)
				want := domain.Webhook{ID: hookID, URL: hookURL, Events: []string{"UserInvited", "RoleChanged"}}
				if !ok || !reflect.DeepEqual(got, want) {
					t.Fatalf("Webhook: got %+v %v, want %+v", got, ok, want)
				}
			},
		},
		{name: "a Manager may not subscribe", given: team(), when: subscribe(manager, hookID, hookURL, "*"), wantErr: domain.CodeNotAllowed},
		{name: "a Monitor may not subscribe", given: team(), when: subscribe(monitor, hookID, hookURL, "*"), wantErr: domain.CodeNotAllowed},
		{name: "an outsider learns nothing", given: team(), when: subscribe(outsider, hookID, hookURL, "*"), wantErr: domain.CodeWorkspaceNotFound},
		{
			name:    "a suspended Admin may not subscribe",
			given:   evs(teamWithAdmin2(), suspended(admin2, domain.RoleAdmin)),
			when:    subscribe(admin2, hookID, hookURL, "*"),
			wantErr: domain.CodeMemberSuspended,
		},
		{name: "no workspace", when: subscribe(owner, hookID, hookURL, "*"), wantErr: domain.CodeWorkspaceNotFound},
		{name: "the same id twice", given: withHook, when: subscribe(owner, hookID, hookURL, "*"), wantErr: domain.CodeInvalidInput},
		{name: "no events", given: team(), when: subscribe(owner, hookID, hookURL), wantErr: domain.CodeInvalidInput},
		{
			name:    "at most MaxWebhooks",
			given:   full,
			when:    subscribe(owner, hookID, hookURL, "*"),
			wantErr: domain.CodeWebhookLimit,
		},
		{
			name:  "one more after a removal",
			given: evs(full, domain.WebhookRemoved{WorkspaceID: wsID, WebhookID: hook(100), URL: hookURL}),
			when:  subscribe(owner, hookID, hookURL, "*"),
			then:  evs(subscribed(hookID, hookURL, "*")),
		},
		{
			name:  "an Admin removes a webhook",
			given: withHook,
			when:  func(w *domain.Workspace) error { return w.RemoveWebhook(owner.id, hookID) },
			then:  evs(domain.WebhookRemoved{WorkspaceID: wsID, WebhookID: hookID, URL: hookURL}),
			check: func(t *testing.T, w *domain.Workspace) {
				if _, ok := w.Webhook(hookID); ok {
					t.Fatal("the removed webhook is still there")
				}
			},
		},
		{
			name:    "removing twice",
			given:   evs(withHook, domain.WebhookRemoved{WorkspaceID: wsID, WebhookID: hookID, URL: hookURL}),
			when:    func(w *domain.Workspace) error { return w.RemoveWebhook(owner.id, hookID) },
			wantErr: domain.CodeWebhookNotFound,
		},
		{
			name:    "a Manager may not remove",
			given:   withHook,
			when:    func(w *domain.Workspace) error { return w.RemoveWebhook(manager.id, hookID) },
			wantErr: domain.CodeNotAllowed,
		},
		{
			name:  "an Admin asks for a replay",
			given: withHook,
			when: func(w *domain.Workspace) error {
				return w.ReplayWebhook(owner.id, hookID, domain.Position{Commit: 12, Prepare: 3})
			},
			then: evs(domain.WebhookReplayRequested{WorkspaceID: wsID, WebhookID: hookID, FromPosition: "12-3"}),
		},
		{
			name:  "a replay from the start",
			given: withHook,
			when:  func(w *domain.Workspace) error { return w.ReplayWebhook(owner.id, hookID, domain.Position{}) },
			then:  evs(domain.WebhookReplayRequested{WorkspaceID: wsID, WebhookID: hookID, FromPosition: "0-0"}),
		},
		{
			name:    "a replay of an unknown webhook",
			given:   team(),
			when:    func(w *domain.Workspace) error { return w.ReplayWebhook(owner.id, hookID, domain.Position{}) },
			wantErr: domain.CodeWebhookNotFound,
		},
		{
			name:    "an Editor may not replay",
			given:   withHook,
			when:    func(w *domain.Workspace) error { return w.ReplayWebhook(editor.id, hookID, domain.Position{}) },
			wantErr: domain.CodeNotAllowed,
		},
	})
}

func TestParseWebhookURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"https://hooks.example.com/usersd", "https://hooks.example.com/usersd"},
		{"HTTPS://Hooks.Example.COM:8443/Path?Q=1", "https://hooks.example.com:8443/Path?Q=1"},
		{"http://203.0.113.7/x", "http://203.0.113.7/x"},
		{"http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080/"},
		{"https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"},
	} {
		got, err := domain.ParseWebhookURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseWebhookURL(%q): got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{
		"", "hooks.example.com/x", "/relative", "ftp://hooks.example.com/", "file:///etc/passwd", "gopher://x/",
		"javascript:alert(1)", "https://", "https:///path", "https://user:pass@hooks.example.com/", "https://user@hooks.example.com/",
		"https://hooks.example.com/#frag", "https://hooks.example.com/ x", "https://bücher.example/", "https://hooks.example.com/\x00",
		"https://hooks.example.com:99999/", "https://hooks.example.com:0/", "https://hooks.example.com:x/",
		"https://hooks.example.com/" + strings.Repeat("a", domain.MaxWebhookURL),
		"mailto:someone@example.com", "http:opaque",
	} {
		got, err := domain.ParseWebhookURL(in)
		if domain.ErrorCode(err) != domain.CodeWebhookURLForbidden {
			t.Errorf("ParseWebhookURL(%q): got %q, %v; want code %s", in, got, err, domain.CodeWebhookURLForbidden)
			continue
		}
		var de *domain.Error
		if !errors.As(err, &de) || de.Field != "url" {
			t.Errorf("ParseWebhookURL(%q): error %v is not about the field url", in, err)
		}
	}
}

func TestParseWebhookEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want []string }{
		{[]string{"*"}, []string{"*"}},
		{[]string{"UserInvited"}, []string{"UserInvited"}},
		{[]string{"RoleChanged", "UserInvited", "RoleChanged"}, []string{"RoleChanged", "UserInvited"}},
		{[]string{"WebhookSubscribed", "UserLoggedIn"}, []string{"WebhookSubscribed", "UserLoggedIn"}},
	} {
		got, err := domain.ParseWebhookEvents(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseWebhookEvents(%q): got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range [][]string{
		nil, {}, {""}, {"*", "UserInvited"}, {"UserInvited", "*"}, {"userinvited"}, {"NoSuchEvent"},
		{"AccountDeleted"}, {"AccountRegistered"}, make([]string, 1000),
	} {
		got, err := domain.ParseWebhookEvents(in)
		if domain.ErrorCode(err) != domain.CodeInvalidInput {
			t.Errorf("ParseWebhookEvents(%q): got %q, %v; want code %s", in, got, err, domain.CodeInvalidInput)
		}
	}
}

func TestWebhookMatches(t *testing.T) {
	t.Parallel()
	all := domain.Webhook{Events: []string{"*"}}
	some := domain.Webhook{Events: []string{"UserInvited", "RoleChanged"}}
	for _, c := range []struct {
		h    domain.Webhook
		name string
		want bool
	}{
		{all, "UserInvited", true}, {all, "WebhookRemoved", true},
		{some, "UserInvited", true}, {some, "RoleChanged", true}, {some, "MemberRemoved", false},
	} {
		if got := c.h.Matches(c.name); got != c.want {
			t.Errorf("%v.Matches(%s): got %v, want %v", c.h.Events, c.name, got, c.want)
		}
	}
}
