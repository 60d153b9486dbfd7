package commands_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// seqIDs makes predictable, distinct ids.
type seqIDs struct {
	mu sync.Mutex
	n  uint64
}

func (s *seqIDs) NewID() uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], s.n)
	id[6] = 0x40 // version 4, so the ids look like what production makes
	return id
}

type env struct {
	t      *testing.T
	store  eventstore.Store
	clock  *clock
	deps   commands.Deps
	app    commands.Application
	system commands.Meta
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := memory.New()
	return newEnvOn(t, store)
}

// newEnvOn builds a replica over a shared store: its own cache, clock and ids.
func newEnvOn(t *testing.T, store eventstore.Store) *env {
	c := &clock{now: t0}
	deps := commands.Deps{
		Workspaces: eventstore.NewWorkspaces(store, testCodec, 16),
		Accounts:   eventstore.NewAccounts(store, testCodec, 1000),
		Logins:     eventstore.NewLogins(store, testCodec),
		Clock:      c,
		IDs:        commands.RandomIDs{},
		Secrets:    testSecrets(),
		// The webhook ports: refuses the host "internal.example", keeps
		// secrets in memory.
		WebhookTargets: webhookTargets{},
		WebhookSecrets: &webhookSecrets{},
	}
	e := &env{t: t, store: store, clock: c, deps: deps, system: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "corr-1"}}
	e.build()
	return e
}

// build makes the application of e.deps again, after a test changed them.
func (e *env) build() {
	e.app = commands.NewApplication(e.deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{})
}

func as(user uuid.UUID) commands.Meta {
	return commands.Meta{Actor: domain.Actor{UserID: user}, CorrelationID: "corr-" + user.String()[:8], Request: &domain.RequestContext{IP: "127.0.0.1", UserAgent: "test"}}
}

func (e *env) createWorkspace(owner string) commands.CreateWorkspaceResult {
	e.t.Helper()
	res, err := e.app.Commands.CreateWorkspace.Handle(context.Background(), commands.CreateWorkspace{
		Name: "Acme", OwnerEmail: owner, OwnerName: "Olga Owner", Meta: e.system,
	})
	if err != nil {
		e.t.Fatalf("create workspace: %v", err)
	}
	return res
}

func (e *env) invite(ws, actor uuid.UUID, role string, emails ...string) commands.InviteUsersResult {
	e.t.Helper()
	res, err := e.tryInvite(ws, actor, role, emails...)
	if err != nil {
		e.t.Fatalf("invite %v: %v", emails, err)
	}
	return res
}

// ownerInvites creates a workspace of owner@example.com, whose owner then
// invites emails (one string, as typed) as role.
func (e *env) ownerInvites(role, emails string) (commands.CreateWorkspaceResult, []domain.InviteResult) {
	e.t.Helper()
	ws := e.createWorkspace("owner@example.com")
	return ws, e.invite(ws.WorkspaceID, ws.OwnerUserID, role, emails).Results
}

// ownerInvitesOne is ownerInvites of one address: its invitation.
func (e *env) ownerInvitesOne(role, email string) (commands.CreateWorkspaceResult, domain.InviteResult) {
	e.t.Helper()
	ws, invited := e.ownerInvites(role, email)
	return ws, invited[0]
}

// ownerWith creates a workspace of owner@example.com in which email has
// joined as role, and answers their user id.
func (e *env) ownerWith(email, role string) (commands.CreateWorkspaceResult, uuid.UUID) {
	e.t.Helper()
	ws := e.createWorkspace("owner@example.com")
	return ws, e.join(ws.WorkspaceID, ws.OwnerUserID, email, role)
}

// tryInvite is invite for goroutines, which must not stop the test.
func (e *env) tryInvite(ws, actor uuid.UUID, role string, emails ...string) (commands.InviteUsersResult, error) {
	return e.app.Commands.InviteUsers.Handle(context.Background(), commands.InviteUsers{
		WorkspaceID: ws, Emails: emails, Role: role, Meta: as(actor),
	})
}

func (e *env) accept(token, name string) commands.AcceptInvitationResult {
	e.t.Helper()
	res, err := e.app.Commands.AcceptInvitation.Handle(context.Background(), commands.AcceptInvitation{Token: token, Name: name})
	if err != nil {
		e.t.Fatalf("accept: %v", err)
	}
	return res
}

// join invites an address with a role and accepts at once.
func (e *env) join(ws, admin uuid.UUID, email, role string) uuid.UUID {
	e.t.Helper()
	r := e.invite(ws, admin, role, email).Results[0]
	return e.accept(r.Token, "Name of "+email).UserID
}

// all reads every stored event in global order.
func all(t *testing.T, s eventstore.Store) []eventstore.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []eventstore.RecordedEvent
	done := errors.New("caught up")
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
		out = append(out, b.Events...)
		if b.CaughtUp {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("read all events: %v", err)
	}
	return out
}

// decodeAll decodes stored events, every personal value opened.
func decodeAll(t *testing.T, raws []eventstore.RecordedEvent) []domain.RecordedEvent {
	t.Helper()
	out, err := testCodec.Decode(context.Background(), raws...)
	if err != nil {
		t.Fatalf("decode %d events: %v", len(raws), err)
	}
	return out
}

func types(events []eventstore.RecordedEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type)
	}
	return out
}

func wantCode(t *testing.T, err error, want domain.Code) {
	t.Helper()
	if got := domain.ErrorCode(err); got != want {
		t.Fatalf("error = %v (code %q), want code %q", err, got, want)
	}
}

func TestCreateWorkspaceMakesOwnerActiveAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.createWorkspace("  Olga@Example.COM ")
	if res.Position.IsZero() {
		t.Errorf("position is zero, want the position of the last event")
	}
	got := types(all(t, e.store))
	want := []string{"AccountRegistered", "WorkspaceCreated"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stored events = %v, want %v", got, want)
	}
	err := e.deps.Workspaces.View(context.Background(), res.WorkspaceID, func(w *domain.Workspace) error {
		m, ok := w.Member(res.OwnerUserID)
		if !ok || m.Role != domain.RoleAdmin || m.Status != domain.StatusActive || m.Email != "olga@example.com" {
			t.Errorf("owner = %+v (found %v), want active Admin olga@example.com", m, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCreateWorkspaceRefusesNonSystemAndBadInputWritingNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.app.Commands.CreateWorkspace
	for _, tc := range []struct {
		name string
		cmd  commands.CreateWorkspace
		want domain.Code
	}{
		{"not system", commands.CreateWorkspace{Name: "A", OwnerEmail: "a@x.com", OwnerName: "A", Meta: as(uuid.New())}, domain.CodeNotAllowed},
		{"bad email", commands.CreateWorkspace{Name: "A", OwnerEmail: "nope", OwnerName: "A", Meta: e.system}, domain.CodeInvalidEmail},
		{"empty name", commands.CreateWorkspace{Name: " ", OwnerEmail: "a@x.com", OwnerName: "A", Meta: e.system}, domain.CodeInvalidName},
		{"empty owner name", commands.CreateWorkspace{Name: "A", OwnerEmail: "a@x.com", OwnerName: "", Meta: e.system}, domain.CodeInvalidName},
	} {
		_, err := h.Handle(context.Background(), tc.cmd)
		if got := domain.ErrorCode(err); got != tc.want {
			t.Errorf("%s: code %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
	if n := len(all(t, e.store)); n != 0 {
		t.Errorf("stored %d events after refused commands, want 0", n)
	}
}

func TestInviteBatchStoresOnlyTokenHashes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ws := e.createWorkspace("owner@example.com")
	res := e.invite(ws.WorkspaceID, ws.OwnerUserID, "editor", "a@x.com, B@y.com; a@X.com\nnot-an-address, owner@example.com")
	var outcomes []string
	for _, r := range res.Results {
		outcomes = append(outcomes, r.Email+"="+string(r.Outcome))
	}
	want := "a@x.com=invited b@y.com=invited not-an-address=invalid owner@example.com=already_member"
	if got := strings.Join(outcomes, " "); got != want {
		t.Fatalf("outcomes = %s, want %s", got, want)
	}
	stored := all(t, e.store)
	for _, r := range res.Results[:2] {
		if r.Token == "" || r.UserID == uuid.Nil || r.InvitationID == uuid.Nil {
			t.Errorf("result %+v lacks token, user or invitation id", r)
		}
		for _, ev := range stored {
			if bytes.Contains(ev.Data, []byte(r.Token)) || bytes.Contains(ev.Metadata, []byte(r.Token)) {
				t.Errorf("event %s holds the clear token", ev.Type)
			}
		}
	}
	// A second identical batch sends nothing new.
	again := e.invite(ws.WorkspaceID, ws.OwnerUserID, "Editor", "a@x.com")
	if again.Results[0].Outcome != domain.OutcomeAlreadyInvited || again.Results[0].Token != "" {
		t.Errorf("second invite = %+v, want already_invited without token", again.Results[0])
	}
	if n := len(all(t, e.store)); n != len(stored) {
		t.Errorf("second identical batch stored %d more events, want 0", n-len(stored))
	}
}

func TestInviteMetadataCarriesActorAndRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ws, _ := e.ownerInvites("Editor", "a@x.com")
	events := all(t, e.store)
	last := events[len(events)-1]
	rec, err := testCodec.DecodeOne(context.Background(), last)
	if err != nil {
		t.Fatal(err)
	}
	m := rec.Metadata
	if m.Actor.UserID != ws.OwnerUserID || m.Actor.Email != "owner@example.com" {
		t.Errorf("actor = %+v, want owner with e-mail", m.Actor)
	}
	if m.EventID != last.ID || m.CorrelationID == "" || m.Request == nil || m.Request.IP != "127.0.0.1" || !m.OccurredAt.Equal(t0) || m.SchemaVersion != 1 {
		t.Errorf("metadata = %+v, want event id, correlation, request, time %v and schema 1", m, t0)
	}
}

func TestRefusedCommandsWriteNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ws, editor := e.ownerWith("ed@x.com", "Editor")
	before := len(all(t, e.store))
	ctx := context.Background()
	invite := e.app.Commands.InviteUsers
	cases := []struct {
		name string
		run  func() error
		want domain.Code
	}{
		{"unknown role", func() error {
			_, err := invite.Handle(ctx, commands.InviteUsers{WorkspaceID: ws.WorkspaceID, Emails: []string{"n@x.com"}, Role: "Owner", Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeInvalidRole},
		{"empty batch", func() error {
			_, err := invite.Handle(ctx, commands.InviteUsers{WorkspaceID: ws.WorkspaceID, Emails: []string{" , "}, Role: "Editor", Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeEmptyBatch},
		{"editor invites", func() error {
			_, err := invite.Handle(ctx, commands.InviteUsers{WorkspaceID: ws.WorkspaceID, Emails: []string{"n@x.com"}, Role: "Editor", Meta: as(editor)})
			return err
		}, domain.CodeNotAllowed},
		{"unknown workspace", func() error {
			_, err := invite.Handle(ctx, commands.InviteUsers{WorkspaceID: uuid.New(), Emails: []string{"n@x.com"}, Role: "Editor", Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeWorkspaceNotFound},
		{"stranger changes role", func() error {
			_, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: editor, Role: "Admin", Meta: as(uuid.New())})
			return err
		}, domain.CodeWorkspaceNotFound},
		{"unknown user", func() error {
			_, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: uuid.New(), Role: "Admin", Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeUserNotFound},
		{"remove last admin", func() error {
			_, err := e.app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeLastAdmin},
		{"suspend last admin", func() error {
			_, err := e.app.Commands.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeLastAdmin},
		{"demote last admin", func() error {
			_, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Role: "Editor", Meta: as(ws.OwnerUserID)})
			return err
		}, domain.CodeLastAdmin},
		{"garbage token", func() error {
			_, err := e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: "abc", Name: "X"})
			return err
		}, domain.CodeInvalidToken},
		{"token of unknown workspace", func() error {
			tok := domain.InvitationToken{WorkspaceID: uuid.New(), InvitationID: uuid.New(), Secret: make([]byte, domain.SecretSize)}
			_, err := e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: tok.String(), Name: "X"})
			return err
		}, domain.CodeInvalidToken},
		{"login for someone else", func() error {
			_, err := e.app.Commands.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(editor)})
			return err
		}, domain.CodeNotAllowed},
		{"settings by editor", func() error {
			f := false
			_, err := e.app.Commands.UpdateSettings.Handle(ctx, commands.UpdateSettings{WorkspaceID: ws.WorkspaceID, ManagersMayGrantAdmin: &f, Meta: as(editor)})
			return err
		}, domain.CodeNotAllowed},
	}
	for _, tc := range cases {
		wantCodeNamed(t, tc.name, tc.run(), tc.want)
	}
	if after := len(all(t, e.store)); after != before {
		t.Errorf("refused commands stored %d events, want 0", after-before)
	}
}

func wantCodeNamed(t *testing.T, name string, err error, want domain.Code) {
	t.Helper()
	if got := domain.ErrorCode(err); got != want {
		t.Errorf("%s: error %v (code %q), want code %q", name, err, got, want)
	}
}

func TestLifecycleAcceptRoleRemoveReinvite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, inv := e.ownerInvitesOne("Monitor", "pat@x.com")

	view, err := e.app.Queries.LookupInvitation.Handle(ctx, commands.LookupInvitation{Token: inv.Token})
	if err != nil || view.WorkspaceName != "Acme" || view.Email != "pat@x.com" || view.Role != domain.RoleMonitor {
		t.Fatalf("lookup = %+v, %v; want Acme, pat@x.com, Monitor", view, err)
	}
	joined := e.accept(inv.Token, " Pat ")
	if joined.UserID != inv.UserID || joined.Role != domain.RoleMonitor || joined.WorkspaceID != ws.WorkspaceID {
		t.Fatalf("accept = %+v, want user %s as Monitor", joined, inv.UserID)
	}
	_, err = e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: inv.Token, Name: "Pat"})
	wantCode(t, err, domain.CodeInvitationUsed)

	if _, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: joined.UserID, Role: "Admin", Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	// Two Admins now: the owner may step down.
	if _, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Role: "Editor", Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatalf("owner steps down: %v", err)
	}
	if _, err := e.app.Commands.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(joined.UserID)}); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	_, err = e.app.Commands.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: e.system})
	wantCode(t, err, domain.CodeMemberSuspended)
	if _, err := e.app.Commands.ReactivateUser.Handle(ctx, commands.ReactivateUser{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(joined.UserID)}); err != nil {
		t.Fatalf("reactivate: %v", err)
	}
	if _, err := e.app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(joined.UserID)}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// The removed owner keeps their account: invited again, same user id.
	again := e.invite(ws.WorkspaceID, joined.UserID, "Editor", "OWNER@example.com").Results[0]
	if again.Outcome != domain.OutcomeInvited || again.UserID != ws.OwnerUserID {
		t.Errorf("re-invite = %+v, want invited with user id %s", again, ws.OwnerUserID)
	}
}

func TestResendKillsOldLinkAndRevokeKillsNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, inv := e.ownerInvitesOne("Editor", "a@x.com")
	res, err := e.app.Commands.ResendInvitation.Handle(ctx, commands.ResendInvitation{WorkspaceID: ws.WorkspaceID, UserID: inv.UserID, Meta: as(ws.OwnerUserID)})
	if err != nil || res.InvitationID != inv.InvitationID || res.Token == "" || res.Token == inv.Token {
		t.Fatalf("resend = %+v, %v; want same invitation, new token", res, err)
	}
	_, err = e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: inv.Token, Name: "A"})
	wantCode(t, err, domain.CodeInvitationRevoked)
	if _, err := e.app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: ws.WorkspaceID, UserID: inv.UserID, Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: res.Token, Name: "A"})
	wantCode(t, err, domain.CodeInvitationRevoked)
}

func TestExpiredInvitationIsRefusedThenExpiredAndResendRevives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, inv := e.ownerInvitesOne("Editor", "a@x.com")
	e.clock.Add(7*24*time.Hour + time.Second)
	_, err := e.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: inv.Token, Name: "A"})
	wantCode(t, err, domain.CodeInvitationExpired)
	exp, err := e.app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws.WorkspaceID})
	if err != nil || exp.Expired != 1 {
		t.Fatalf("expire = %+v, %v; want 1 expired", exp, err)
	}
	res, err := e.app.Commands.ResendInvitation.Handle(ctx, commands.ResendInvitation{WorkspaceID: ws.WorkspaceID, UserID: inv.UserID, Meta: as(ws.OwnerUserID)})
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if got := e.accept(res.Token, "A"); got.UserID != inv.UserID {
		t.Errorf("accepted user %s, want %s", got.UserID, inv.UserID)
	}
}

func TestEmailOutcomeRecordedOnlyForCurrentAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, inv := e.ownerInvitesOne("Editor", "a@x.com")
	record := func(o commands.EmailOutcome) {
		t.Helper()
		if _, err := e.app.Commands.RecordEmailOutcomes.Handle(ctx, commands.RecordEmailOutcomes{WorkspaceID: ws.WorkspaceID, Outcomes: []commands.EmailOutcome{o}}); err != nil {
			t.Fatal(err)
		}
	}
	before := len(all(t, e.store))
	record(commands.EmailOutcome{InvitationID: inv.InvitationID, Attempt: 2})
	if n := len(all(t, e.store)) - before; n != 0 {
		t.Errorf("stale attempt stored %d events, want 0", n)
	}
	record(commands.EmailOutcome{InvitationID: inv.InvitationID, Attempt: 1, Failure: "550 no such user"})
	events := all(t, e.store)
	if last := events[len(events)-1]; last.Type != "InvitationEmailFailed" {
		t.Errorf("last event %s, want %s", last.Type, "InvitationEmailFailed")
	}
}

func TestLoginsGoToTheirOwnStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws := e.createWorkspace("owner@example.com")
	pos, err := e.app.Commands.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: ws.WorkspaceID, UserID: ws.OwnerUserID, Meta: as(ws.OwnerUserID)})
	if err != nil || pos.IsZero() {
		t.Fatalf("login = %v, %v; want a position", pos, err)
	}
	events, err := e.store.ReadStream(ctx, eventstore.LoginsStream(ws.WorkspaceID), eventstore.ReadOptions{})
	if err != nil || len(events) != 1 || events[0].Type != "UserLoggedIn" {
		t.Fatalf("logins stream = %v, %v; want one UserLoggedIn", types(events), err)
	}
	wsEvents, _ := e.store.ReadStream(ctx, eventstore.WorkspaceStream(ws.WorkspaceID), eventstore.ReadOptions{})
	if len(wsEvents) != 1 {
		t.Errorf("workspace stream has %d events, want only WorkspaceCreated", len(wsEvents))
	}
	_, err = e.app.Commands.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: uuid.New(), UserID: ws.OwnerUserID, Meta: as(ws.OwnerUserID)})
	wantCode(t, err, domain.CodeWorkspaceNotFound)
}

func TestSamePersonInvitedToTwoWorkspacesAtOnceGetsOneUserID(t *testing.T) {
	t.Parallel()
	store := memory.New()
	a, b := newEnvOn(t, store), newEnvOn(t, store)
	for round := 0; round < 20; round++ {
		wsA := a.createWorkspace("owner-a@example.com")
		wsB := b.createWorkspace("owner-b@example.com")
		email := "new-" + uuid.NewString()[:8] + "@x.com"
		var ra, rb commands.InviteUsersResult
		var errA, errB error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ra, errA = a.tryInvite(wsA.WorkspaceID, wsA.OwnerUserID, "Editor", email) }()
		go func() { defer wg.Done(); rb, errB = b.tryInvite(wsB.WorkspaceID, wsB.OwnerUserID, "Editor", email) }()
		wg.Wait()
		if errA != nil || errB != nil {
			t.Fatalf("round %d: invites failed: %v, %v", round, errA, errB)
		}
		if ra.Results[0].UserID != rb.Results[0].UserID {
			t.Fatalf("round %d: user ids %s and %s, want one id per address", round, ra.Results[0].UserID, rb.Results[0].UserID)
		}
	}
}

// slowStore widens the window between a replica's read and its append, so
// that two replicas really do conflict.
type slowStore struct{ eventstore.Store }

func (s slowStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	time.Sleep(time.Millisecond)
	return s.Store.Append(ctx, stream, expected, events...)
}

func TestReplicasConflictAndRetry(t *testing.T) {
	t.Parallel()
	store := slowStore{memory.New()}
	a, b := newEnvOn(t, store), newEnvOn(t, store)
	ws := a.createWorkspace("owner@example.com")
	// Both replicas load the workspace into their caches first.
	a.invite(ws.WorkspaceID, ws.OwnerUserID, "Editor", "warm-a@x.com")
	b.invite(ws.WorkspaceID, ws.OwnerUserID, "Editor", "warm-b@x.com")
	const perReplica = 25
	var wg sync.WaitGroup
	for _, e := range []*env{a, b} {
		for i := 0; i < perReplica; i++ {
			wg.Add(1)
			go func(e *env) {
				defer wg.Done()
				if _, err := e.tryInvite(ws.WorkspaceID, ws.OwnerUserID, "Editor", uuid.NewString()[:8]+"@x.com"); err != nil {
					t.Errorf("concurrent invite: %v", err)
				}
			}(e)
		}
	}
	wg.Wait()
	events, err := store.ReadStream(context.Background(), eventstore.WorkspaceStream(ws.WorkspaceID), eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(events), 1+2+2*perReplica; got != want {
		t.Errorf("workspace stream has %d events, want %d (every concurrent invite stored once)", got, want)
	}
	for i, ev := range events {
		if ev.Revision != uint64(i) {
			t.Fatalf("event %d has revision %d", i, ev.Revision)
		}
	}
}

// testSecrets is the link derivation of the tests: a fixed key, so links
// are deterministic.
func testSecrets() commands.HMACLinkSecrets {
	s, err := commands.NewHMACLinkSecrets(bytes.Repeat([]byte("k"), commands.MinTokenKeySize))
	if err != nil {
		panic(err)
	}
	return s
}

func TestSequentialIDsAreDeterministic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := &seqIDs{}
	e.deps.IDs = ids
	e.build()
	ws := e.createWorkspace("owner@example.com")
	if ws.WorkspaceID != (uuid.UUID{6: 0x40, 15: 1}) {
		t.Errorf("workspace id %s, want the first id of the source", ws.WorkspaceID)
	}
}

func TestRefusedBatchReservesNoAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, manager := e.ownerWith("mgr@x.com", "Manager")
	f := false
	if _, err := e.app.Commands.UpdateSettings.Handle(ctx, commands.UpdateSettings{WorkspaceID: ws.WorkspaceID, ManagersMayGrantAdmin: &f, Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatal(err)
	}
	before := len(all(t, e.store))
	_, err := e.tryInvite(ws.WorkspaceID, manager, "Admin", "new-admin@x.com")
	wantCode(t, err, domain.CodeNotAllowed)
	limited := commands.InvitationPolicy{TTL: time.Hour, Limits: domain.InviteLimits{PerWorkspace: 2}}
	_, err = commands.NewApplication(e.deps, limited, commands.Instrumentation{}).Commands.InviteUsers.Handle(ctx, commands.InviteUsers{
		WorkspaceID: ws.WorkspaceID, Emails: []string{"n1@x.com, n2@x.com"}, Role: "Editor", Meta: as(ws.OwnerUserID),
	})
	wantCode(t, err, domain.CodeRateLimited)
	if after := len(all(t, e.store)); after != before {
		t.Errorf("refused batches stored %d events (accounts included), want 0", after-before)
	}
}

// A replica whose cache missed that the inviter was suspended elsewhere
// refuses the invitation without reserving any account: the check runs on
// the stored workspace before anything is written.
func TestAStaleReplicaRefusesAnInviteWithoutReservingAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memory.New()
	a, b := newEnvOn(t, store), newEnvOn(t, store)
	ws := a.createWorkspace("owner@example.com")
	inv := a.invite(ws.WorkspaceID, ws.OwnerUserID, "Manager", "manager@x.com")
	manager := a.accept(inv.Results[0].Token, "Manny")
	// b caches the workspace with the manager active.
	b.invite(ws.WorkspaceID, manager.UserID, "Editor", "warm@x.com")
	if _, err := a.app.Commands.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: ws.WorkspaceID, UserID: manager.UserID, Meta: as(ws.OwnerUserID)}); err != nil {
		t.Fatalf("suspend on replica a: %v", err)
	}
	_, err := b.tryInvite(ws.WorkspaceID, manager.UserID, "Editor", "fresh@x.com")
	if err == nil {
		t.Fatal("a suspended manager invited through the stale replica b")
	}
	if _, err := store.ReadStream(ctx, testCodec.AccountStream(domain.Email("fresh@x.com")), eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("fresh@x.com's account stream: got %v, want none (a refused invitation reserves nothing)", err)
	}
}
