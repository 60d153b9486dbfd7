package domain

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Webhook is a URL subscribed to some of a workspace's events. Its secret
// is no part of the workspace: the command that subscribes it stores the
// secret encrypted apart from the events (docs/integrations.md).
type Webhook struct {
	ID  uuid.UUID
	URL string
	// Events are event type names, or the one AllEvents.
	Events []string
}

const (
	// AllEvents subscribes a webhook to every event of its workspace.
	AllEvents = "*"
	// MaxWebhooks bounds a workspace's webhooks: each one is a delivery
	// for every event of the workspace.
	MaxWebhooks = 20
	// MaxWebhookURL bounds a webhook's URL, in bytes.
	MaxWebhookURL = 2048
)

// Matches reports whether h is subscribed to events of type name.
func (h Webhook) Matches(name string) bool {
	return slices.Contains(h.Events, AllEvents) || slices.Contains(h.Events, name)
}

// ParseWebhookURL checks the form of a webhook's URL: absolute http or
// https, with a host, no user name or password (they would sit in the
// events and the audit history in clear), no fragment, at most
// MaxWebhookURL bytes of printable ASCII (a host name in Unicode is sent
// in its xn-- form). It answers the URL as usersd stores and calls it
// (scheme and host in lower case). Whether the host may be called at all
// (private and loopback addresses) is the adapter's to check: it needs
// the network.
func ParseWebhookURL(raw string) (string, error) {
	bad := func(format string, args ...any) error {
		return fieldError("url", CodeWebhookURLForbidden, format, args...)
	}
	switch {
	case raw == "":
		return "", bad("the url is empty")
	case len(raw) > MaxWebhookURL:
		return "", bad("the url is longer than %d bytes", MaxWebhookURL)
	case !utf8.ValidString(raw) || strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0:
		return "", bad("the url may hold only printable ASCII characters, without spaces (percent-encode the others)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("the url is not a valid URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", bad("a webhook's url must start with https:// or http://")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "", bad("the url has no host")
	case u.User != nil:
		return "", bad("the url may not hold a user name or password")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", bad("the url may not hold a fragment (#...)")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("the url's port is not valid")
		}
	}
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

// ParseWebhookEvents checks what a webhook subscribes to: ["*"] (every
// event of the workspace) or names of event types of a workspace, each
// once (duplicates are dropped). It answers the list in the order given.
func ParseWebhookEvents(names []string) ([]string, error) {
	bad := func(format string, args ...any) error {
		return fieldError("events", CodeInvalidInput, format, args...)
	}
	if len(names) == 0 {
		return nil, bad("name at least one event type, or \"*\" for every one")
	}
	if len(names) > len(eventTypes.byName) {
		return nil, bad("at most %d event types", len(eventTypes.byName))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n == AllEvents {
			if len(names) > 1 {
				return nil, bad("\"*\" already names every event type: send it alone")
			}
			return []string{AllEvents}, nil
		}
		t, ok := eventTypes.byName[n]
		if !ok {
			return nil, bad("unknown event type %q", truncate(n, 60))
		}
		if _, ok := t.workspace(t.zero); !ok {
			return nil, bad("%s events belong to no workspace", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// ErrWebhookNotFound answers a webhook id the workspace does not have (or
// no longer has).
var ErrWebhookNotFound = &Error{Code: CodeWebhookNotFound, Message: "no such webhook in this workspace"}

// Webhook returns one of the workspace's webhooks.
func (w *Workspace) Webhook(id uuid.UUID) (Webhook, bool) {
	h, ok := w.webhooks[id]
	if !ok {
		return Webhook{}, false
	}
	h.Events = slices.Clone(h.Events)
	return h, true
}

// Webhooks lists the workspace's webhooks, by id.
func (w *Workspace) Webhooks() []Webhook {
	out := make([]Webhook, 0, len(w.webhooks))
	for id := range w.webhooks {
		h, _ := w.Webhook(id)
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Webhook) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

// CheckSubscribeWebhook answers whether actor may subscribe one more
// webhook now, before anything is prepared for it (its secret).
func (w *Workspace) CheckSubscribeWebhook(actor uuid.UUID) error {
	if _, err := w.authorize(actor, PermAdministerSystem); err != nil {
		return err
	}
	if len(w.webhooks) >= MaxWebhooks {
		return newError(CodeWebhookLimit, "a workspace has at most %d webhooks; remove one first", MaxWebhooks)
	}
	return nil
}

// SubscribeWebhook subscribes the URL url (ParseWebhookURL's answer) to
// events (ParseWebhookEvents') as webhook id. Only an Admin may.
func (w *Workspace) SubscribeWebhook(actor, id uuid.UUID, url string, events []string) error {
	if err := w.CheckSubscribeWebhook(actor); err != nil {
		return err
	}
	if id == uuid.Nil || len(events) == 0 || url == "" {
		return newError(CodeInvalidInput, "a webhook needs an id, a url and events")
	}
	if _, ok := w.webhooks[id]; ok {
		return newError(CodeInvalidInput, "webhook %s exists already", id)
	}
	w.record(WebhookSubscribed{WorkspaceID: w.id, WebhookID: id, URL: url, Events: slices.Clone(events)})
	return nil
}

// RemoveWebhook ends a webhook's deliveries. Only an Admin may.
func (w *Workspace) RemoveWebhook(actor, id uuid.UUID) error {
	if _, err := w.authorize(actor, PermAdministerSystem); err != nil {
		return err
	}
	h, ok := w.webhooks[id]
	if !ok {
		return ErrWebhookNotFound
	}
	w.record(WebhookRemoved{WorkspaceID: w.id, WebhookID: id, URL: h.URL})
	return nil
}

// ReplayWebhook asks for the workspace's events after from (the zero
// Position: from the start) and before this request to be delivered to a
// webhook again, those it is subscribed to. Only an Admin may.
func (w *Workspace) ReplayWebhook(actor, id uuid.UUID, from Position) error {
	if _, err := w.authorize(actor, PermAdministerSystem); err != nil {
		return err
	}
	if _, ok := w.webhooks[id]; !ok {
		return ErrWebhookNotFound
	}
	w.record(WebhookReplayRequested{WorkspaceID: w.id, WebhookID: id, FromPosition: from.String()})
	return nil
}
