package commands_test

import (
	"context"
	"testing"

	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// TestAccountIDsAreRandomAndTellNoTime: an account id reaches anyone who
// invites the person (invitation results, the user list), so it must not
// tell when the account was made: account ids are version 4 (random), with
// the production sources. Invitation, workspace and event ids stay version 7
// (time-ordered, kind to the indexes).
func TestAccountIDsAreRandomAndTellNoTime(t *testing.T) {
	t.Parallel()
	store := memory.New()
	app := commands.NewApplication(eventstoretest.Deps(store, testCodec, testSecrets()),
		commands.DefaultInvitationPolicy(), commands.Instrumentation{})
	ctx := context.Background()
	system := commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "corr-ids"}
	ws, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
		Name: "Acme", OwnerEmail: "owner@ids.test", OwnerName: "Olga Owner", Meta: system,
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := ws.OwnerUserID.Version(); v != 4 {
		t.Errorf("owner's user id %s is version %d, want 4", ws.OwnerUserID, v)
	}
	if v := ws.WorkspaceID.Version(); v != 7 {
		t.Errorf("workspace id %s is version %d, want 7", ws.WorkspaceID, v)
	}
	res, err := app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{
		WorkspaceID: ws.WorkspaceID, Emails: []string{"ann@ids.test, bob@ids.test"}, Role: "Editor", Meta: as(ws.OwnerUserID),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 2 {
		t.Fatalf("got %d results, want 2", len(res.Results))
	}
	for _, r := range res.Results {
		if r.Outcome != domain.OutcomeInvited {
			t.Fatalf("%s: outcome %s, want invited", r.Email, r.Outcome)
		}
		if v := r.UserID.Version(); v != 4 {
			t.Errorf("%s: user id %s is version %d, want 4", r.Email, r.UserID, v)
		}
		if v := r.InvitationID.Version(); v != 7 {
			t.Errorf("%s: invitation id %s is version %d, want 7", r.Email, r.InvitationID, v)
		}
	}
	events := all(t, store)
	registered := 0
	for _, ev := range events {
		rec, err := testCodec.DecodeOne(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if v := rec.Metadata.EventID.Version(); v != 7 {
			t.Errorf("%s: event id %s is version %d, want 7", ev.Type, rec.Metadata.EventID, v)
		}
		if reg, ok := rec.Event.(domain.AccountRegistered); ok {
			registered++
			if v := reg.UserID.Version(); v != 4 {
				t.Errorf("AccountRegistered for a user id of version %d, want 4", v)
			}
		}
	}
	if registered != 3 {
		t.Errorf("%d accounts registered, want 3 (the owner and two invitees)", registered)
	}
}
