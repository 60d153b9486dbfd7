package feed_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/feed"
)

var (
	ws    = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	alice = uuid.MustParse("22222222-2222-4222-8222-222222222222")
	bob   = uuid.MustParse("33333333-3333-4333-8333-333333333333")
	evID  = uuid.MustParse("44444444-4444-4444-8444-444444444444")
	at    = time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.FixedZone("CET", 3600))
)

// accepted is bob accepting an invitation, alice's request, as the codec
// opens it.
func accepted(erased ...uuid.UUID) domain.RecordedEvent {
	return domain.RecordedEvent{
		Envelope: domain.Envelope{
			Event: domain.InvitationAccepted{WorkspaceID: ws, InvitationID: uuid.Nil, UserID: bob,
				Email: "bob@example.com", Name: "Bob", Role: "member", AcceptedAt: at},
			Metadata: domain.Metadata{EventID: evID, SchemaVersion: 1, OccurredAt: at,
				Actor:         domain.Actor{UserID: alice, Email: "alice@example.com"},
				CorrelationID: "corr", Request: &domain.RequestContext{IP: "192.0.2.1", UserAgent: "curl"}},
		},
		Erased:   erased,
		Position: domain.Position{Commit: 12, Prepare: 34},
	}
}

func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("line %s: %v", line, err)
	}
	return m
}

func TestLineOfALivingPerson(t *testing.T) {
	t.Parallel()
	line, err := feed.Line(accepted())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsRune(line, '\n') {
		t.Errorf("Line holds a newline: %q", line)
	}
	got := decode(t, line)
	want := map[string]any{
		"position":    "12-34",
		"eventId":     evID.String(),
		"type":        "InvitationAccepted",
		"workspaceId": ws.String(),
		"occurredAt":  "2026-03-04T04:06:07.89Z",
		"data": map[string]any{
			"workspaceId": ws.String(), "invitationId": uuid.Nil.String(), "userId": bob.String(),
			"email": "bob@example.com", "name": "Bob", "role": "member", "acceptedAt": "2026-03-04T05:06:07.89+01:00",
		},
		"metadata": map[string]any{
			"schemaVersion": json.Number("1"),
			"actor":         map[string]any{"userId": alice.String(), "email": "alice@example.com"},
			"correlationId": "corr",
			"request":       map[string]any{"ip": "192.0.2.1", "userAgent": "curl"},
		},
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("line:\n got  %s\n want %s", g, w)
	}
}

func TestLineOfAnErasedSubjectShowsNothingOfThem(t *testing.T) {
	t.Parallel()
	ev := accepted(bob)
	// As the codec opens it: "" where the key is gone.
	e := ev.Event.(domain.InvitationAccepted)
	e.Email, e.Name = "", ""
	ev.Event = e
	line, err := feed.Line(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, line)
	data := got["data"].(map[string]any)
	for _, f := range []string{"email", "name"} {
		if v, ok := data[f]; !ok || v != nil {
			t.Errorf("data.%s = %v (present %v), want null", f, v, ok)
		}
	}
	if data["userId"] != bob.String() || data["role"] != "member" {
		t.Errorf("data lost what is not personal: %v", data)
	}
	// The actor lives: shown opened.
	actor := got["metadata"].(map[string]any)["actor"].(map[string]any)
	if actor["email"] != "alice@example.com" || actor["erased"] != nil {
		t.Errorf("actor = %v, want alice opened", actor)
	}
}

func TestLineOfAnErasedActorShowsNothingOfThem(t *testing.T) {
	t.Parallel()
	ev := accepted(alice)
	ev.Metadata.Actor.Email = ""
	ev.Metadata.Request = &domain.RequestContext{}
	line, err := feed.Line(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, line)
	meta := got["metadata"].(map[string]any)
	if g, w := mustJSON(t, meta["actor"]), mustJSON(t, map[string]any{"userId": alice.String(), "email": nil, "erased": true}); g != w {
		t.Errorf("actor = %s, want %s", g, w)
	}
	if _, ok := meta["request"]; ok {
		t.Errorf("an erased actor's request context is shown: %v", meta["request"])
	}
	// Even a value the codec left readable (one written in clear) does
	// not show for a person the event lists as erased.
	ev.Metadata.Actor.Email = "alice@example.com"
	ev.Metadata.Request = &domain.RequestContext{IP: "192.0.2.1"}
	line, err = feed.Line(ev)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(line, []byte("alice@")) || bytes.Contains(line, []byte("192.0.2.1")) {
		t.Errorf("line shows an erased actor's values: %s", line)
	}
	data := decode(t, line)["data"].(map[string]any)
	if data["email"] != "bob@example.com" {
		t.Errorf("data.email = %v, want bob's (alive)", data["email"])
	}
}

func TestLineOfTheSystemAndOfNoWorkspace(t *testing.T) {
	t.Parallel()
	ev := domain.RecordedEvent{
		Envelope: domain.Envelope{
			Event:    domain.AccountDeleted{UserID: bob, DeletedAt: at},
			Metadata: domain.Metadata{EventID: evID, Actor: domain.Actor{System: true}},
		},
		Position: domain.Position{Commit: 1, Prepare: 2},
	}
	line, err := feed.Line(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, line)
	if v, ok := got["workspaceId"]; !ok || v != nil {
		t.Errorf("workspaceId = %v (present %v), want null", v, ok)
	}
	if v, ok := got["occurredAt"]; !ok || v != nil {
		t.Errorf("occurredAt without a time = %v (present %v), want null", v, ok)
	}
	meta := got["metadata"].(map[string]any)
	if g, w := mustJSON(t, meta), `{"actor":{"system":true},"schemaVersion":1}`; g != w {
		t.Errorf("metadata = %s, want %s", g, w)
	}
}

func TestEveryEventTypeHasALine(t *testing.T) {
	t.Parallel()
	for _, typ := range domain.EventTypes() {
		ev := domain.RecordedEvent{Envelope: domain.Envelope{Event: typ.Zero()}}
		line, err := feed.AppendLine([]byte("x"), ev)
		if err != nil {
			t.Errorf("%s: %v", typ.Name, err)
			continue
		}
		if !bytes.HasPrefix(line, []byte("x{")) || !bytes.HasSuffix(line, []byte("}\n")) {
			t.Errorf("%s: AppendLine = %q, want x + the object + a newline", typ.Name, line)
			continue
		}
		got := decode(t, line[1:])
		if got["type"] != typ.Name {
			t.Errorf("%s: type %v", typ.Name, got["type"])
		}
		_, hasWS := domain.WorkspaceOf(typ.Zero())
		if (got["workspaceId"] != nil) != hasWS {
			t.Errorf("%s: workspaceId %v, event of a workspace: %v", typ.Name, got["workspaceId"], hasWS)
		}
		if _, ok := got["data"].(map[string]any); !ok {
			t.Errorf("%s: data %v is no object", typ.Name, got["data"])
		}
	}
}

func TestLineRefusesWhatIsNoEvent(t *testing.T) {
	t.Parallel()
	dst := []byte("kept")
	out, err := feed.AppendLine(dst, domain.RecordedEvent{Envelope: domain.Envelope{Event: struct{}{}}})
	if err == nil {
		t.Fatalf("AppendLine of no event: %s, want an error", out)
	}
	if string(out) != "kept" {
		t.Errorf("AppendLine after an error = %q, want dst unchanged", out)
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	got := string(feed.AppendHeartbeat(nil, domain.Position{Commit: 7, Prepare: 8}))
	if want := `{"type":"heartbeat","position":"7-8"}` + "\n"; got != want {
		t.Errorf("heartbeat = %q, want %q", got, want)
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	other := uuid.New()
	inWS := accepted()
	noWS := domain.RecordedEvent{Envelope: domain.Envelope{Event: domain.AccountRegistered{UserID: bob}}}
	cases := []struct {
		name string
		f    feed.Filter
		want [2]bool // inWS, noWS
	}{
		{"all", feed.Filter{}, [2]bool{true, true}},
		{"type kept", feed.Filter{Types: []string{"RoleChanged", "InvitationAccepted"}}, [2]bool{true, false}},
		{"type of no workspace", feed.Filter{Types: []string{"AccountRegistered"}}, [2]bool{false, true}},
		{"workspace", feed.Filter{Workspace: ws}, [2]bool{true, false}},
		{"other workspace", feed.Filter{Workspace: other}, [2]bool{false, false}},
		{"both", feed.Filter{Types: []string{"InvitationAccepted"}, Workspace: ws}, [2]bool{true, false}},
		{"both, other type", feed.Filter{Types: []string{"RoleChanged"}, Workspace: ws}, [2]bool{false, false}},
	}
	for _, c := range cases {
		if got := [2]bool{c.f.Keeps(inWS), c.f.Keeps(noWS)}; got != c.want {
			t.Errorf("%s: keeps %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseTypes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                    "",
		" , ,":                                "",
		"UserInvited":                         "UserInvited",
		" UserInvited , RoleChanged,":         "UserInvited,RoleChanged",
		"RoleChanged,UserInvited,RoleChanged": "RoleChanged,UserInvited",
	} {
		got, err := feed.ParseTypes(in)
		if err != nil {
			t.Errorf("ParseTypes(%q): %v", in, err)
			continue
		}
		if strings.Join(got, ",") != want {
			t.Errorf("ParseTypes(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"userinvited", "UserInvited,Nope", "heartbeat", strings.Repeat("é", 500)} {
		_, err := feed.ParseTypes(in)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != "types" {
			t.Errorf("ParseTypes(%q) = %v, want invalid input about types", in, err)
			continue
		}
		if len(de.Message) > 1000 {
			t.Errorf("ParseTypes(%q): message of %d bytes", in[:10], len(de.Message))
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
