package audit_test

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
)

func TestProjectionIdentity(t *testing.T) {
	t.Parallel()
	p := audit.New()
	if got, want := p.Name(), "audit"; got != want {
		t.Errorf("Name: got %q, want %q", got, want)
	}
	if got, want := p.Tables(), []string{"audit_entries", "audit_user_emails"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tables: got %q, want %q", got, want)
	}
	if s := p.Schema(); s.Tables == "" || s.Indexes == "" {
		t.Errorf("Schema: got %+v, want the tables and, apart, the filter indexes (a rebuild builds them after its replay)", s)
	}
}

// wantEntry is what one entry should show.
type wantEntry struct {
	action  string
	actor   audit.Actor
	target  *audit.Target
	details map[string]any
}

// TestApplyEntryPerEventType walks a workspace through every kind of event
// and checks each entry: actor and target as they were, details, metadata,
// and the chain.
func TestApplyEntryPerEventType(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	owner := newPerson("ada@acme.test")
	mgr := newPerson("max@acme.test")
	inv := newPerson("ivy@example.test")
	inv2 := newPerson("sam@example.test")
	invitation, invitation2, hook := uuid.New(), uuid.New(), uuid.New()
	expires := t0.Add(7 * 24 * time.Hour)

	events := []domain.RecordedEvent{
		h.next(domain.AccountRegistered{UserID: owner.id, Email: owner.email}),
		h.next(domain.WorkspaceCreated{WorkspaceID: ws, Name: "Acme", OwnerUserID: owner.id, OwnerEmail: owner.email, OwnerName: "Ada", CreatedAt: t0},
			withCorrelation("corr-create", ""), withRequest("198.51.100.1", "platform/1.0")),
		h.next(domain.UserInvited{WorkspaceID: ws, InvitationID: invitation, UserID: inv.id, Email: inv.email, Role: "Editor",
			InvitedBy: owner.id, InviterRole: "Admin", TokenHash: "SECRET-TOKEN-HASH", InvitedAt: t0, ExpiresAt: expires},
			by(owner.actor()), withCorrelation("corr-invite", "cause-invite"), withRequest("203.0.113.9", "Firefox")),
		h.next(domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: invitation, UserID: inv.id, Attempt: 1},
			withCorrelation("corr-invite", "")),
		h.next(domain.InvitationResent{WorkspaceID: ws, InvitationID: invitation, UserID: inv.id, Email: inv.email, Attempt: 2,
			ResentBy: owner.id, TokenHash: "SECRET-TOKEN-HASH-2", ResentAt: t0, ExpiresAt: expires.Add(time.Hour)}, by(owner.actor())),
		h.next(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: invitation, UserID: inv.id, Attempt: 2, Reason: "mailbox full"}),
		h.next(domain.InvitationAccepted{WorkspaceID: ws, InvitationID: invitation, UserID: inv.id, Email: inv.email, Name: "Ivy", Role: "Editor", AcceptedAt: t0},
			by(inv.actor())),
		h.next(domain.RoleChanged{WorkspaceID: ws, UserID: inv.id, Email: inv.email, FromRole: "Editor", ToRole: "Manager", ChangedBy: owner.id}, by(owner.actor())),
		h.next(domain.RoleChanged{WorkspaceID: ws, UserID: inv.id, Email: inv.email, FromRole: "Manager", ToRole: "Admin", ChangedBy: owner.id, Until: &expires}, by(owner.actor())),
		h.next(domain.RoleGrantExpired{WorkspaceID: ws, UserID: inv.id, Email: inv.email, FromRole: "Admin", ToRole: "Manager", Until: expires}),
		h.next(domain.RoleGrantExpiryRefused{WorkspaceID: ws, UserID: inv.id, Email: inv.email, Role: "Admin", PreviousRole: "Manager", Until: expires, Reason: "last_admin"}),
		h.next(domain.MemberSuspended{WorkspaceID: ws, UserID: inv.id, Email: inv.email, Role: "Manager"}, by(owner.actor())),
		h.next(domain.MemberReactivated{WorkspaceID: ws, UserID: inv.id, Email: inv.email, Role: "Manager"}, by(owner.actor())),
		h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: inv.id, LoggedInAt: t0}, by(inv.actor())),
		h.next(domain.WorkspaceSettingsChanged{WorkspaceID: ws, ManagersMayGrantAdmin: false}, by(owner.actor())),
		h.next(domain.UserInvited{WorkspaceID: ws, InvitationID: invitation2, UserID: inv2.id, Email: inv2.email, Role: "Admin",
			InvitedBy: mgr.id, InviterRole: "Manager", Escalation: true, TokenHash: "SECRET-TOKEN-HASH-3", InvitedAt: t0, ExpiresAt: expires},
			by(mgr.actor())),
		h.next(domain.InvitationExpired{WorkspaceID: ws, InvitationID: invitation2, UserID: inv2.id, Email: inv2.email, ExpiredAt: expires}),
		h.next(domain.InvitationRevoked{WorkspaceID: ws, InvitationID: invitation2, UserID: inv2.id, Email: inv2.email, Role: "Admin"}, by(owner.actor())),
		h.next(domain.MemberRemoved{WorkspaceID: ws, UserID: inv.id, Email: inv.email, Role: "Manager"}, by(owner.actor())),
		h.next(domain.WebhookSubscribed{WorkspaceID: ws, WebhookID: hook, URL: "https://hooks.example.test/in?token=SECRET-TOKEN", Events: []string{"UserInvited", "RoleChanged"}}, by(owner.actor())),
		h.next(domain.WebhookReplayRequested{WorkspaceID: ws, WebhookID: hook, FromPosition: "12-3"}, by(owner.actor())),
		h.next(domain.WebhookRemoved{WorkspaceID: ws, WebhookID: hook, URL: "https://hooks.example.test/in?token=SECRET-TOKEN"}, by(owner.actor())),
	}
	apply(t, pool, events)

	tgt := func(p person) *audit.Target { return &audit.Target{ID: p.id, Email: p.email} }
	act := func(p person) audit.Actor { return audit.Actor{ID: p.id, Email: p.email} }
	sys := audit.Actor{System: true}
	want := []wantEntry{
		{"WorkspaceCreated", sys, tgt(owner), map[string]any{"name": "Acme", "ownerName": "Ada", "role": "Admin"}},
		{"UserInvited", act(owner), tgt(inv), map[string]any{"invitationId": invitation.String(), "role": "Editor", "inviterRole": "Admin",
			"escalation": false, "expiresAt": "2025-03-08T10:00:00.123456789Z"}},
		{"InvitationEmailSent", sys, tgt(inv), map[string]any{"invitationId": invitation.String(), "attempt": 1.0}},
		{"InvitationResent", act(owner), tgt(inv), map[string]any{"invitationId": invitation.String(), "attempt": 2.0,
			"expiresAt": "2025-03-08T11:00:00.123456789Z"}},
		{"InvitationEmailFailed", sys, tgt(inv), map[string]any{"invitationId": invitation.String(), "attempt": 2.0, "reason": "mailbox full"}},
		{"InvitationAccepted", act(inv), tgt(inv), map[string]any{"invitationId": invitation.String(), "role": "Editor", "name": "Ivy"}},
		{"RoleChanged", act(owner), tgt(inv), map[string]any{"fromRole": "Editor", "toRole": "Manager"}},
		{"RoleChanged", act(owner), tgt(inv), map[string]any{"fromRole": "Manager", "toRole": "Admin", "until": "2025-03-08T10:00:00.123456789Z"}},
		{"RoleGrantExpired", sys, tgt(inv), map[string]any{"fromRole": "Admin", "toRole": "Manager", "until": "2025-03-08T10:00:00.123456789Z"}},
		{"RoleGrantExpiryRefused", sys, tgt(inv), map[string]any{"role": "Admin", "previousRole": "Manager",
			"until": "2025-03-08T10:00:00.123456789Z", "reason": "last_admin"}},
		{"MemberSuspended", act(owner), tgt(inv), map[string]any{"role": "Manager"}},
		{"MemberReactivated", act(owner), tgt(inv), map[string]any{"role": "Manager"}},
		{"UserLoggedIn", act(inv), tgt(inv), map[string]any{"loggedInAt": "2025-03-01T10:00:00.123456789Z"}},
		{"WorkspaceSettingsChanged", act(owner), nil, map[string]any{"managersMayGrantAdmin": false}},
		{"UserInvited", act(mgr), tgt(inv2), map[string]any{"invitationId": invitation2.String(), "role": "Admin", "inviterRole": "Manager",
			"escalation": true, "expiresAt": "2025-03-08T10:00:00.123456789Z"}},
		{"InvitationExpired", sys, tgt(inv2), map[string]any{"invitationId": invitation2.String(), "expiredAt": "2025-03-08T10:00:00.123456789Z"}},
		{"InvitationRevoked", act(owner), tgt(inv2), map[string]any{"invitationId": invitation2.String(), "role": "Admin"}},
		{"MemberRemoved", act(owner), tgt(inv), map[string]any{"role": "Manager"}},
		{"WebhookSubscribed", act(owner), nil, map[string]any{"webhookId": hook.String(), "url": "https://hooks.example.test/in?…", "events": "UserInvited,RoleChanged"}},
		{"WebhookReplayRequested", act(owner), nil, map[string]any{"webhookId": hook.String(), "fromPosition": "12-3"}},
		{"WebhookRemoved", act(owner), nil, map[string]any{"webhookId": hook.String(), "url": "https://hooks.example.test/in?…"}},
	}

	got := all(t, pool, ws)
	if len(got) != len(want) {
		t.Fatalf("entries: got %d, want %d (one per workspace event, AccountRegistered skipped)", len(got), len(want))
	}
	hexHash := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for i, w := range want {
		g := got[i]
		ev := events[i+1] // events[0] is the skipped AccountRegistered
		if g.Seq != int64(i+1) {
			t.Errorf("entry %d: seq: got %d, want %d", i, g.Seq, i+1)
		}
		if g.Action != w.action {
			t.Errorf("entry %d: action: got %q, want %q", i, g.Action, w.action)
		}
		if g.WorkspaceID != ws {
			t.Errorf("entry %d (%s): workspace: got %s, want %s", i, w.action, g.WorkspaceID, ws)
		}
		if g.EventID != ev.Metadata.EventID {
			t.Errorf("entry %d (%s): event id: got %s, want %s", i, w.action, g.EventID, ev.Metadata.EventID)
		}
		if want := ev.Metadata.OccurredAt.Truncate(time.Microsecond); !g.OccurredAt.Equal(want) {
			t.Errorf("entry %d (%s): occurredAt: got %s, want %s", i, w.action, g.OccurredAt, want)
		}
		if g.Actor != w.actor {
			t.Errorf("entry %d (%s): actor: got %+v, want %+v", i, w.action, g.Actor, w.actor)
		}
		if !reflect.DeepEqual(g.Target, w.target) {
			t.Errorf("entry %d (%s): target: got %+v, want %+v", i, w.action, g.Target, w.target)
		}
		var details map[string]any
		if err := json.Unmarshal(g.Details, &details); err != nil {
			t.Errorf("entry %d (%s): details %s: %v", i, w.action, g.Details, err)
		}
		if !reflect.DeepEqual(details, w.details) {
			t.Errorf("entry %d (%s): details: got %v, want %v", i, w.action, details, w.details)
		}
		if g.CorrelationID != ev.Metadata.CorrelationID || g.CausationID != ev.Metadata.CausationID {
			t.Errorf("entry %d (%s): correlation, causation: got %q, %q, want %q, %q", i, w.action,
				g.CorrelationID, g.CausationID, ev.Metadata.CorrelationID, ev.Metadata.CausationID)
		}
		if !reflect.DeepEqual(g.Request, ev.Metadata.Request) {
			t.Errorf("entry %d (%s): request: got %+v, want %+v", i, w.action, g.Request, ev.Metadata.Request)
		}
		if g.Position != ev.Position {
			t.Errorf("entry %d (%s): position: got %s, want %s", i, w.action, g.Position, ev.Position)
		}
		if !hexHash.MatchString(g.Hash) {
			t.Errorf("entry %d (%s): hash: got %q, want 64 lower-case hex digits", i, w.action, g.Hash)
		}
		wantPrev := ""
		if i > 0 {
			wantPrev = got[i-1].Hash
		}
		if g.PrevHash != wantPrev {
			t.Errorf("entry %d (%s): prevHash: got %q, want the previous entry's hash %q", i, w.action, g.PrevHash, wantPrev)
		}
		if b, _ := json.Marshal(g); strings.Contains(string(b), "SECRET") {
			t.Errorf("entry %d (%s): got %s, want no token hash in the entry", i, w.action, b)
		}
	}
	wantIntact(t, pool, ws, len(want), "after the scenario")
}

// TestEveryEventTypeIsHandled applies an event of every registered type:
// each gets an entry, except AccountRegistered. A type added to the domain
// and forgotten here fails Apply, and so this test.
func TestEveryEventTypeIsHandled(t *testing.T) {
	pool, h := fresh(t)
	ws, user := uuid.New(), uuid.New()
	data := []byte(`{"workspaceId":"` + ws.String() + `","userId":"` + user.String() + `","email":"x@example.test"}`)
	names := domain.EventTypeNames()
	var events []domain.RecordedEvent
	want := map[string]bool{}
	for _, name := range names {
		ev, err := domain.DecodeEvent(name, domain.SchemaVersion, data)
		if err != nil {
			t.Fatalf("DecodeEvent(%s): %v", name, err)
		}
		events = append(events, h.next(ev))
		want[name] = name != "AccountRegistered" && name != "AccountDeleted" // no workspace
	}
	apply(t, pool, events)
	got := map[string]bool{}
	for _, name := range names {
		got[name] = false
	}
	for _, e := range all(t, pool, ws) {
		got[e.Action] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event types with an entry: got %v, want %v", got, want)
	}
}

// unknownEvent is no registered event type.
type unknownEvent struct{}

func TestApplyRefusesUnknownEventType(t *testing.T) {
	pool, h := fresh(t)
	err := tryApply(pool, "", []domain.RecordedEvent{h.next(unknownEvent{})})
	if err == nil || !strings.Contains(err.Error(), "unknownEvent") {
		t.Errorf("Apply of an unknown event type: got %v, want an error naming its type", err)
	}
}

func TestApplySkipsEventsWithoutWorkspace(t *testing.T) {
	pool, h := fresh(t)
	apply(t, pool, []domain.RecordedEvent{h.next(domain.AccountRegistered{UserID: uuid.New(), Email: "a@example.test"})})
	apply(t, pool, nil)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_entries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("entries: got %d, want 0 for AccountRegistered", n)
	}
}

// TestSeqPerWorkspace interleaves two workspaces: each counts 1, 2, 3...
// in global order, and each chain starts from an empty prev hash.
func TestSeqPerWorkspace(t *testing.T) {
	pool, h := fresh(t)
	a, b := uuid.New(), uuid.New()
	p := newPerson("p@example.test")
	var events []domain.RecordedEvent
	var wantA, wantB []uuid.UUID
	for i := range 7 {
		ws := a
		if i%3 == 1 {
			ws = b
		}
		r := h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: p.id, LoggedInAt: t0}, by(p.actor()))
		events = append(events, r)
		if ws == a {
			wantA = append(wantA, r.Metadata.EventID)
		} else {
			wantB = append(wantB, r.Metadata.EventID)
		}
	}
	apply(t, pool, events[:4])
	apply(t, pool, events[4:])
	for _, c := range []struct {
		ws   uuid.UUID
		want []uuid.UUID
	}{{a, wantA}, {b, wantB}} {
		got := all(t, pool, c.ws)
		if len(got) != len(c.want) {
			t.Fatalf("workspace %s: got %d entries, want %d", c.ws, len(got), len(c.want))
		}
		for i, e := range got {
			if e.Seq != int64(i+1) || e.EventID != c.want[i] {
				t.Errorf("workspace %s entry %d: got seq %d event %s, want seq %d event %s", c.ws, i, e.Seq, e.EventID, i+1, c.want[i])
			}
		}
		if got[0].PrevHash != "" {
			t.Errorf("workspace %s: first prevHash: got %q, want empty", c.ws, got[0].PrevHash)
		}
		wantIntact(t, pool, c.ws, len(c.want), "of workspace "+c.ws.String())
	}
}

// TestApplyIsIdempotent replays batches whole and in part: nothing is
// stored twice, no seq is skipped and the chain stays whole.
func TestApplyIsIdempotent(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	owner := newPerson("ada@acme.test")
	inv := newPerson("ivy@example.test")
	events := []domain.RecordedEvent{
		h.next(domain.WorkspaceCreated{WorkspaceID: ws, Name: "Acme", OwnerUserID: owner.id, OwnerEmail: owner.email}),
		h.next(domain.UserInvited{WorkspaceID: ws, InvitationID: uuid.New(), UserID: inv.id, Email: inv.email, Role: "Editor"}, by(owner.actor())),
		h.next(domain.InvitationEmailSent{WorkspaceID: ws, UserID: inv.id, Attempt: 1}),
		h.next(domain.RoleChanged{WorkspaceID: ws, UserID: inv.id, Email: inv.email, FromRole: "Editor", ToRole: "Monitor"}, by(owner.actor())),
		h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: inv.id}, by(inv.actor())),
		h.next(domain.MemberRemoved{WorkspaceID: ws, UserID: inv.id, Email: inv.email, Role: "Monitor"}, by(owner.actor())),
	}

	// The reference: every event once, in one batch, in another database.
	ref, _ := pgtest.New(t)
	apply(t, ref, events)
	want := chain(t, ref, "public")

	apply(t, pool, events[:3])
	apply(t, pool, events[:3])                                                     // the same batch again
	apply(t, pool, events[1:5])                                                    // overlapping: two old, two new
	apply(t, pool, append(append([]domain.RecordedEvent{}, events...), events[5])) // everything, the last twice
	if got := chain(t, pool, "public"); !reflect.DeepEqual(got, want) {
		t.Errorf("entries after replays:\n got %+v\nwant %+v", got, want)
	}
	wantIntact(t, pool, ws, len(events), "after replays")
}

// TestTargetEmailFromKnowledge: events without an address show the last
// one the projection saw for that user in that workspace, across batches;
// none known: no address.
func TestTargetEmailFromKnowledge(t *testing.T) {
	pool, h := fresh(t)
	a, b := uuid.New(), uuid.New()
	u := newPerson("old@example.test")
	stranger := newPerson("")
	apply(t, pool, []domain.RecordedEvent{
		h.next(domain.UserInvited{WorkspaceID: a, InvitationID: uuid.New(), UserID: u.id, Email: "old@example.test", Role: "Editor"}),
		h.next(domain.UserInvited{WorkspaceID: b, InvitationID: uuid.New(), UserID: u.id, Email: "in-b@example.test", Role: "Editor"}),
		h.next(domain.InvitationEmailSent{WorkspaceID: a, UserID: u.id, Attempt: 1}),
	})
	apply(t, pool, []domain.RecordedEvent{
		h.next(domain.InvitationEmailFailed{WorkspaceID: a, UserID: u.id, Attempt: 2}),
		h.next(domain.InvitationAccepted{WorkspaceID: a, UserID: u.id, Email: "new@example.test", Role: "Editor"}),
		h.next(domain.UserLoggedIn{WorkspaceID: a, UserID: u.id}),
		h.next(domain.UserLoggedIn{WorkspaceID: b, UserID: u.id}),
		h.next(domain.UserLoggedIn{WorkspaceID: a, UserID: stranger.id}),
	})
	var gotA []string
	for _, e := range all(t, pool, a) {
		gotA = append(gotA, e.Action+" "+e.Target.Email)
	}
	wantA := []string{
		"UserInvited old@example.test",
		"InvitationEmailSent old@example.test",
		"InvitationEmailFailed old@example.test", // learnt in the previous batch
		"InvitationAccepted new@example.test",
		"UserLoggedIn new@example.test",
		"UserLoggedIn ", // never seen: unknown
	}
	if !reflect.DeepEqual(gotA, wantA) {
		t.Errorf("workspace a targets:\n got %q\nwant %q", gotA, wantA)
	}
	gotB := all(t, pool, b)
	if e := gotB[len(gotB)-1]; e.Target.Email != "in-b@example.test" {
		t.Errorf("workspace b login target: got %q, want the address known in b, %q", e.Target.Email, "in-b@example.test")
	}
}

// TestApplyStoresAwkwardText: NUL characters and invalid UTF-8, which
// PostgreSQL refuses in text and jsonb, do not stop the projection, and
// text that JSON escapes still verifies.
func TestApplyStoresAwkwardText(t *testing.T) {
	pool, h := fresh(t)
	ws, u := uuid.New(), uuid.New()
	weird := "a\x00b\xffc \"q\" \\ <x>&y \u2028 \t\n ✓ 🙂"
	apply(t, pool, []domain.RecordedEvent{
		h.next(domain.WorkspaceCreated{WorkspaceID: ws, Name: weird, OwnerUserID: u, OwnerEmail: "o@example.test"},
			withRequest("::1", weird), withCorrelation(weird, "")),
		h.next(domain.InvitationEmailFailed{WorkspaceID: ws, UserID: u, Attempt: 1, Reason: weird}),
	})
	got := all(t, pool, ws)
	wantText := "a\uFFFDb\uFFFDc \"q\" \\ <x>&y \u2028 \t\n ✓ 🙂"
	var details map[string]any
	if err := json.Unmarshal(got[1].Details, &details); err != nil {
		t.Fatal(err)
	}
	if details["reason"] != wantText {
		t.Errorf("reason: got %q, want %q", details["reason"], wantText)
	}
	if got[0].Request.UserAgent != wantText || got[0].CorrelationID != wantText {
		t.Errorf("user agent, correlation id: got %q, %q, want %q", got[0].Request.UserAgent, got[0].CorrelationID, wantText)
	}
	if res := verify(t, pool, ws); !res.OK {
		t.Errorf("Verify: got broken at %v, want ok", seqOrNil(res.FirstBrokenSeq))
	}
}

// TestApplyRefusesAStoredEventAtANewPosition: an event whose id is stored
// already but that comes after its workspace's last entry can only mean a
// second writer (or positions renumbered without a rebuild). Apply fails
// rather than fork the chain, and the transaction leaves nothing behind.
func TestApplyRefusesAStoredEventAtANewPosition(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	p := newPerson("p@example.test")
	first := logins(h, ws, p, 2)
	apply(t, pool, first)
	before := chain(t, pool, "public")

	again := first[0]
	again.Position = domain.Position{Commit: 1 << 40, Prepare: 1}
	next := logins(h, ws, p, 1)
	err := tryApply(pool, "", append(next, again))
	if err == nil || !strings.Contains(err.Error(), "audit_entries_event_id_key") {
		t.Errorf("Apply of a stored event at a new position: got %v, want the event_id key to refuse it", err)
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("entries after the refused batch:\n got %+v\nwant %+v", after, before)
	}
}

// TestApplyKeepsTimes: times before PostgreSQL's epoch (2000) and far from
// it survive the binary COPY, truncated to microseconds, and verify.
func TestApplyKeepsTimes(t *testing.T) {
	pool, h := fresh(t)
	ws := uuid.New()
	p := newPerson("p@example.test")
	times := []time.Time{
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 1000, time.FixedZone("X", -7*3600)),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	var events []domain.RecordedEvent
	for _, at := range times {
		ev := h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: p.id, LoggedInAt: at}, by(p.actor()))
		ev.Metadata.OccurredAt = at
		events = append(events, ev)
	}
	apply(t, pool, events)
	for i, e := range all(t, pool, ws) {
		if want := times[i].Truncate(time.Microsecond); !e.OccurredAt.Equal(want) {
			t.Errorf("entry %d: occurredAt: got %s, want %s", i, e.OccurredAt, want)
		}
	}
	wantIntact(t, pool, ws, len(times), "after the batches")
}
