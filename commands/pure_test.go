package commands_test

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// purity is a repository that decides every command three times on the
// same state and fails the test when the runs record different events, or
// when a decision does I/O (reserves accounts, records a login).
type purity struct {
	commands.WorkspaceRepository
	t        *testing.T
	deciding *atomic.Bool
}

func (p purity) Update(ctx context.Context, id uuid.UUID, decide func(*domain.Workspace) error, stamp commands.Stamp) (domain.Position, error) {
	return p.WorkspaceRepository.Update(ctx, id, func(w *domain.Workspace) error {
		var first []domain.Event
		var firstErr error
		for run := range 3 {
			p.deciding.Store(true)
			err := decide(w)
			p.deciding.Store(false)
			got := append([]domain.Event(nil), w.Pending()...)
			if run == 0 {
				first, firstErr = got, err
			} else if !reflect.DeepEqual(got, first) || domain.ErrorCode(err) != domain.ErrorCode(firstErr) || (err == nil) != (firstErr == nil) {
				p.t.Errorf("run %d of a decision recorded %+v (%v), the first %+v (%v): a decision must be pure", run+1, got, err, first, firstErr)
			}
			if run < 2 {
				w.Discard()
			}
		}
		return firstErr
	}, stamp)
}

type noIOAccounts struct {
	commands.Accounts
	t        *testing.T
	deciding *atomic.Bool
}

func (a noIOAccounts) Resolve(ctx context.Context, emails []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error) {
	if a.deciding.Load() {
		a.t.Error("accounts reserved inside a decision: that is I/O, which belongs to the command's preparation")
	}
	return a.Accounts.Resolve(ctx, emails, newID, meta)
}

// Every command decides purely: deciding again on the same state records
// the same events, and no decision reserves accounts.
func TestDecisionsArePure(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, memory.New())
	deciding := &atomic.Bool{}
	e.deps.Workspaces = purity{e.deps.Workspaces, t, deciding}
	e.deps.People = storeDirectory{e.store}
	e.deps.Deleter = e.deps.Accounts.(*eventstore.Accounts)
	e.deps.Keys = shredder{keys: testKeys}
	e.deps.Accounts = noIOAccounts{e.deps.Accounts, t, deciding}
	e.build()
	ctx := context.Background()
	ws := e.createWorkspace("owner@example.com")
	id, admin := ws.WorkspaceID, ws.OwnerUserID
	res := e.invite(id, admin, "Editor", "ann@x.com, bob@x.com, owner@example.com, not-an-address").Results
	e.clock.Add(time.Second)
	resent, err := e.app.Commands.ResendInvitation.Handle(ctx, commands.ResendInvitation{WorkspaceID: id, UserID: res[1].UserID, Meta: as(admin)})
	if err != nil {
		t.Fatal(err)
	}
	ann := e.accept(res[0].Token, "Ann").UserID
	bob := e.accept(resent.Token, "Bob").UserID
	must := func(what string, _ any, err error) { // the result: any
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	c := e.app.Commands
	pos, err := c.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: id, UserID: ann, Role: "Manager", Until: e.clock.Now().Add(24 * time.Hour), Meta: as(admin)})
	must("change role", pos, err)
	pos, err = c.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: id, UserID: ann, Meta: as(admin)})
	must("suspend", pos, err)
	pos, err = c.ReactivateUser.Handle(ctx, commands.ReactivateUser{WorkspaceID: id, UserID: ann, Meta: as(admin)})
	must("reactivate", pos, err)
	pos, err = c.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: id, UserID: bob, Meta: as(admin)})
	must("remove", pos, err)
	f := false
	pos, err = c.UpdateSettings.Handle(ctx, commands.UpdateSettings{WorkspaceID: id, ManagersMayGrantAdmin: &f, Meta: as(admin)})
	must("settings", pos, err)
	later := e.invite(id, admin, "Editor", "cy@x.com, bob@x.com").Results
	pos, err = c.RecordEmailOutcomes.Handle(ctx, commands.RecordEmailOutcomes{WorkspaceID: id, Outcomes: []commands.EmailOutcome{
		{InvitationID: later[0].InvitationID, Attempt: 1}, {InvitationID: later[1].InvitationID, Attempt: 1, Failure: "550"},
	}})
	must("record outcomes", pos, err)
	e.clock.Add(8 * 24 * time.Hour)
	exp, err := c.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: id})
	must("expire", exp, err)
	if exp.Expired != 2 || exp.RoleGrants != 1 {
		t.Errorf("expired %d invitations and %d temporary roles, want 2 and 1", exp.Expired, exp.RoleGrants)
	}
	rev, err := c.StartAccessReview.Handle(ctx, commands.StartAccessReview{WorkspaceID: id, Name: "Q4", Meta: as(admin)})
	must("start a review", rev, err)
	decideItem := func(user uuid.UUID, decision, role string) (domain.Position, error) {
		return c.DecideAccessReviewItem.Handle(ctx, commands.DecideAccessReviewItem{
			WorkspaceID: id, ReviewID: rev.ReviewID, UserID: user, Decision: decision, Role: role, Comment: "checked", Meta: as(admin),
		})
	}
	_, err = decideItem(admin, "revoke", "")
	wantCode(t, err, domain.CodeLastAdmin)
	pos, err = decideItem(admin, "keep", "")
	must("keep", pos, err)
	pos, err = decideItem(ann, "change_role", "Monitor")
	must("change a role in a review", pos, err)
	pos, err = decideItem(later[0].UserID, "revoke", "")
	must("revoke in a review", pos, err)
	pos, err = decideItem(later[1].UserID, "keep", "")
	must("keep an invitation", pos, err)
	pos, err = c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: id, ReviewID: rev.ReviewID, Meta: as(admin)})
	must("complete a review", pos, err)
	hook, err := c.SubscribeWebhook.Handle(ctx, commands.SubscribeWebhook{WorkspaceID: id, URL: "https://hooks.example.com/x", Events: []string{"*"}, Meta: as(admin)})
	must("subscribe a webhook", hook, err)
	pos, err = c.ReplayWebhook.Handle(ctx, commands.ReplayWebhook{WorkspaceID: id, WebhookID: hook.WebhookID, Meta: as(admin)})
	must("replay a webhook", pos, err)
	pos, err = c.RemoveWebhook.Handle(ctx, commands.RemoveWebhook{WorkspaceID: id, WebhookID: hook.WebhookID, Meta: as(admin)})
	must("remove a webhook", pos, err)
	del, err := c.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: ann, Meta: e.system})
	must("delete account", del, err)
	// Refusals are decided purely too.
	_, err = c.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: id, UserID: admin, Role: "Editor", Meta: as(admin)})
	wantCode(t, err, domain.CodeLastAdmin)
	_, err = c.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: id, Emails: []string{"new@x.com"}, Role: "Editor", Meta: as(bob)})
	wantCode(t, err, domain.CodeWorkspaceNotFound)
	_, err = c.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: admin, Meta: e.system})
	wantCode(t, err, domain.CodeLastAdmin)
}

// An address that became free between the preparation and the decision
// (its member removed meanwhile, through another replica) gets its account
// then, and is invited: the decision asks for what was not prepared.
func TestInviteReservesWhatTheDecisionFindsMissing(t *testing.T) {
	t.Parallel()
	store := memory.New()
	a, b := newEnvOn(t, store), newEnvOn(t, store)
	ws := a.createWorkspace("owner@example.com")
	pat := a.join(ws.WorkspaceID, ws.OwnerUserID, "pat@x.com", "Editor")
	removed := false
	a.deps.Workspaces = hooked{a.deps.Workspaces, func() {
		if removed {
			return
		}
		removed = true
		if _, err := b.app.Commands.RemoveUser.Handle(context.Background(), commands.RemoveUser{WorkspaceID: ws.WorkspaceID, UserID: pat, Meta: as(ws.OwnerUserID)}); err != nil {
			t.Errorf("remove pat on replica b: %v", err)
		}
	}}
	a.build()
	got := a.invite(ws.WorkspaceID, ws.OwnerUserID, "Editor", "pat@x.com").Results[0]
	if !removed {
		t.Fatal("the hook never ran")
	}
	if got.Outcome != domain.OutcomeInvited || got.UserID != pat {
		t.Errorf("invite of the address removed meanwhile: %+v, want invited with the same user id %s", got, pat)
	}
}

// hooked runs before ahead of each Update.
type hooked struct {
	commands.WorkspaceRepository
	before func()
}

func (h hooked) Update(ctx context.Context, id uuid.UUID, decide func(*domain.Workspace) error, stamp commands.Stamp) (domain.Position, error) {
	h.before()
	return h.WorkspaceRepository.Update(ctx, id, decide, stamp)
}
