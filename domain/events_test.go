package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/usersd/usersd/domain"
)

// sampleEvents holds one value of every event type with every field set.
func sampleEvents() []domain.Event {
	return []domain.Event{
		created(),
		invitedAt(20, nora, domain.RoleAdmin, manager, domain.RoleManager, t0),
		resent(20, nora, 2, 30, manager, t0.Add(hour)),
		with(revoked(20, nora, domain.RoleAdmin), func(e *domain.InvitationRevoked) { e.Reason = domain.ReasonAccountDeleted }),
		expired(20, nora, t0.Add(week)),
		acceptedAt(20, nora, domain.RoleAdmin, t0.Add(2*hour)),
		domain.InvitationEmailSent{WorkspaceID: wsID, InvitationID: invID(20), UserID: nora.id, Attempt: 2},
		domain.InvitationEmailFailed{WorkspaceID: wsID, InvitationID: invID(20), UserID: nora.id, Attempt: 2, Reason: "550 no such user"},
		roleChangedUntil(editor, domain.RoleEditor, domain.RoleAdmin, owner, t0.Add(day)),
		grantExpired(editor, domain.RoleAdmin, domain.RoleEditor, t0.Add(day)),
		grantKept(editor, domain.RoleAdmin, domain.RoleEditor, t0.Add(day)),
		with(removed(editor, domain.RoleEditor), func(e *domain.MemberRemoved) { e.Reason = domain.ReasonAccountDeleted }),
		suspended(editor, domain.RoleEditor),
		reactivated(editor, domain.RoleEditor),
		settingsChanged(true),
		domain.UserLoggedIn{WorkspaceID: wsID, UserID: editor.id, LoggedInAt: t0.Add(3 * hour)},
		domain.AuditDivergenceAccepted{WorkspaceID: wsID, Seq: 12, LiveHash: strings.Repeat("a", 64), RebuiltHash: strings.Repeat("b", 64)},
		reviewStarted(review1, 5),
		decided(review1, editor, domain.DecisionChangeRole, domain.RoleMonitor, "moved to support"),
		domain.AccessReviewCompleted{WorkspaceID: wsID, ReviewID: review1, Items: 5, Kept: 3, Changed: 1, Revoked: 1},
		domain.WebhookSubscribed{WorkspaceID: wsID, WebhookID: hookID, URL: "https://hooks.example.com/usersd?team=7", Events: []string{"UserInvited", "RoleChanged"}},
		domain.WebhookRemoved{WorkspaceID: wsID, WebhookID: hookID, URL: "https://hooks.example.com/usersd?team=7"},
		domain.WebhookReplayRequested{WorkspaceID: wsID, WebhookID: hookID, FromPosition: "12-3"},
		domain.AccountRegistered{UserID: nora.id, Email: string(nora.email)},
		domain.AccountDeleted{UserID: nora.id, DeletedAt: t0.Add(week)},
	}
}

func TestEventTypeNamesMatchTheEvents(t *testing.T) {
	t.Parallel()
	var want []string
	for _, e := range sampleEvents() {
		want = append(want, domain.EventName(e))
	}
	got := domain.EventTypeNames()
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EventTypeNames: got %v, want %v (one per event type)", got, want)
	}
	// The names are stored with every event: they never change.
	stored := []string{
		"AccessReviewCompleted", "AccessReviewItemDecided", "AccessReviewStarted", "AccountDeleted", "AccountRegistered", "AuditDivergenceAccepted", "InvitationAccepted", "InvitationEmailFailed", "InvitationEmailSent",
		"InvitationExpired", "InvitationResent", "InvitationRevoked", "MemberReactivated",
		"MemberRemoved", "MemberSuspended", "RoleChanged", "RoleGrantExpired", "RoleGrantExpiryRefused", "UserInvited", "UserLoggedIn",
		"WebhookRemoved", "WebhookReplayRequested", "WebhookSubscribed", "WorkspaceCreated", "WorkspaceSettingsChanged",
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("EventTypeNames: got %v, want the stored names %v", got, stored)
	}
}

func TestEventRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range sampleEvents() {
		t.Run(domain.EventName(e), func(t *testing.T) {
			t.Parallel()
			// Every field is set, so a dropped field shows up below.
			v := reflect.ValueOf(e)
			for i := 0; i < v.NumField(); i++ {
				if v.Field(i).IsZero() && v.Field(i).Kind() != reflect.Bool {
					t.Fatalf("sample %s: field %s is zero, want every field set", domain.EventName(e), v.Type().Field(i).Name)
				}
			}
			data, err := domain.EncodeEvent(e)
			if err != nil {
				t.Fatalf("EncodeEvent: got error %v, want JSON", err)
			}
			var fields map[string]any
			if err := json.Unmarshal(data, &fields); err != nil {
				t.Fatalf("EncodeEvent: got %s, want a JSON object: %v", data, err)
			}
			if len(fields) != v.NumField() {
				t.Fatalf("EncodeEvent: got %d JSON fields %s, want %d, one per struct field", len(fields), data, v.NumField())
			}
			for k := range fields {
				if k == "" || k[0] < 'a' || k[0] > 'z' {
					t.Errorf("EncodeEvent: got JSON field %q, want lowerCamelCase names", k)
				}
			}
			got, err := domain.DecodeEvent(domain.EventName(e), domain.SchemaVersion, data)
			if err != nil {
				t.Fatalf("DecodeEvent: got error %v, want the event back", err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("DecodeEvent(EncodeEvent(e)):\n got  %T%+v\n want %T%+v", got, got, e, e)
			}
		})
	}
}

// TestDecodeStoredEvent pins the stored form of an event: a stored event
// must keep decoding into the same value.
func TestDecodeStoredEvent(t *testing.T) {
	t.Parallel()
	data := `{"workspaceId":"0a000000-0000-4000-8000-000000000001","userId":"0b000000-0000-4000-8000-00000000a004",` +
		`"email":"eve@example.com","fromRole":"Editor","toRole":"Manager","changedBy":"0b000000-0000-4000-8000-00000000a001"}`
	got, err := domain.DecodeEvent("RoleChanged", 1, []byte(data))
	if err != nil {
		t.Fatalf("DecodeEvent: got error %v, want a RoleChanged", err)
	}
	if want := roleChanged(editor, domain.RoleEditor, domain.RoleManager, owner); got != domain.Event(want) {
		t.Fatalf("DecodeEvent: got %T%+v, want %T%+v", got, got, want, want)
	}
	data = `{"workspaceId":"0a000000-0000-4000-8000-000000000001","managersMayGrantAdmin":false}`
	got, err = domain.DecodeEvent("WorkspaceSettingsChanged", 1, []byte(data))
	if err != nil || got != domain.Event(settingsChanged(false)) {
		t.Fatalf("DecodeEvent: got %+v, %v, want %+v", got, err, settingsChanged(false))
	}
}

// unregistered is a struct the domain does not know as an event.
type unregistered struct{ WorkspaceID string }

func TestEncodeEventRefusesUnregisteredType(t *testing.T) {
	t.Parallel()
	data, err := domain.EncodeEvent(unregistered{})
	if err == nil {
		t.Fatalf("EncodeEvent(unregistered): got %s, want an error", data)
	}
	if name := domain.EventName(unregistered{}); name != "" {
		t.Errorf("EventName(unregistered): got %q, want \"\"", name)
	}
	if ws, ok := domain.WorkspaceOf(unregistered{}); ok {
		t.Errorf("WorkspaceOf(unregistered): got %s, true, want false", ws)
	}
	if _, ok := domain.TypeOf(&domain.RoleChanged{}); ok {
		t.Errorf("TypeOf(*RoleChanged): got a type, want none (events are values, not pointers)")
	}
}

// TestWorkspaceOf: every event names its workspace, but AccountRegistered,
// which belongs to none; and every registered type has a sample above.
func TestWorkspaceOf(t *testing.T) {
	t.Parallel()
	samples := make(map[string]domain.Event)
	for _, e := range sampleEvents() {
		samples[domain.EventName(e)] = e
	}
	for _, typ := range domain.EventTypes() {
		e, ok := samples[typ.Name]
		if !ok {
			t.Errorf("sampleEvents has no %s, want one of every registered type", typ.Name)
			continue
		}
		if typ.Version != domain.SchemaVersion {
			t.Errorf("%s: version %d, want %d (no type has moved on yet)", typ.Name, typ.Version, domain.SchemaVersion)
		}
		ws, ok := domain.WorkspaceOf(e)
		switch {
		case typ.Name == "AccountRegistered", typ.Name == "AccountDeleted":
			if ok {
				t.Errorf("WorkspaceOf(%s): got %s, true, want no workspace", typ.Name, ws)
			}
		case !ok || ws != wsID:
			t.Errorf("WorkspaceOf(%s): got %s, %t, want %s, true", typ.Name, ws, ok, wsID)
		}
	}
}

func TestDecodeEventErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, typ string
		version   int
		data      string
		mention   string
	}{
		{"unknown type", "UserTeleported", 1, `{}`, "unknown event type"},
		{"empty type", "", 1, `{}`, "unknown event type"},
		{"newer schema version", "UserInvited", domain.SchemaVersion + 1, `{}`, "newer"},
		{"schema version zero", "UserInvited", 0, `{}`, "not valid"},
		{"bad JSON", "UserInvited", 1, `{"workspaceId":`, "UserInvited"},
		{"not an object", "RoleChanged", 1, `[1,2]`, "RoleChanged"},
		{"wrong field type", "InvitationResent", 1, `{"attempt":"two"}`, "InvitationResent"},
		{"bad uuid", "MemberRemoved", 1, `{"userId":"not-a-uuid"}`, "MemberRemoved"},
		{"bad time", "UserLoggedIn", 1, `{"loggedInAt":"yesterday"}`, "UserLoggedIn"},
		{"empty data", "MemberRemoved", 1, ``, "MemberRemoved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.DecodeEvent(c.typ, c.version, []byte(c.data))
			if err == nil {
				t.Fatalf("DecodeEvent(%q, %d, %q): got %+v, want an error", c.typ, c.version, c.data, got)
			}
			if got != nil {
				t.Errorf("DecodeEvent: got %+v with the error, want nil", got)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("DecodeEvent: got error %q, want it to mention %q", err, c.mention)
			}
			if code := domain.ErrorCode(err); code != "" {
				t.Errorf("DecodeEvent: got domain code %q, want a plain error (stored data is not a user's mistake)", code)
			}
		})
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	specific := &domain.Error{Code: domain.CodeLastAdmin, Message: "ada@example.com is the last active Admin"}
	cases := []struct {
		name string
		err  error
		want domain.Code
	}{
		{"nil", nil, ""},
		{"plain error", errors.New("boom"), ""},
		{"domain error", specific, domain.CodeLastAdmin},
		{"wrapped", fmt.Errorf("remove: %w", specific), domain.CodeLastAdmin},
		{"sentinel", domain.ErrInvitationUsed, domain.CodeInvitationUsed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.ErrorCode(c.err); got != c.want {
				t.Fatalf("ErrorCode(%v): got %q, want %q", c.err, got, c.want)
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", specific), domain.ErrLastAdmin) {
		t.Errorf("errors.Is(specific last_admin error, ErrLastAdmin): got false, want true")
	}
	if errors.Is(specific, domain.ErrNotAllowed) {
		t.Errorf("errors.Is(last_admin error, ErrNotAllowed): got true, want false")
	}
	if got, want := specific.Error(), "last_admin: ada@example.com is the last active Admin"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}
