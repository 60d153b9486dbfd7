package eventstore_test

import (
	"context"
	"testing"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// TestAWorkspaceOfAnErasedPersonStillWorks: once a former member's key is
// destroyed, a replica that never saw the workspace replays its events
// (their address and name read as "") and decides on it, and both that
// replica and one that cached the workspace invite the address again as a
// new person.
func TestAWorkspaceOfAnErasedPersonStillWorks(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, ctx context.Context, store eventstore.Store) {
		app := func() commands.Application {
			return commands.NewApplication(eventstoretest.Deps(store, testCodec, commands.EphemeralLinkSecrets()), commands.DefaultInvitationPolicy(), commands.Instrumentation{})
		}
		warm := app()
		system := commands.Meta{Actor: domain.Actor{System: true}}
		ws, err := warm.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{Name: "Acme", OwnerEmail: "owner@acme.test", OwnerName: "Owner", Meta: system})
		if err != nil {
			t.Fatal(err)
		}
		admin := commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID, Email: "owner@acme.test"}}
		invite := func(a commands.Application) domain.InviteResult {
			t.Helper()
			res, err := a.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: ws.WorkspaceID, Emails: []string{"leaver@acme.test"}, Role: "Editor", Meta: admin})
			if err != nil {
				t.Fatal(err)
			}
			return res.Results[0]
		}
		first := invite(warm)
		joined, err := warm.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: first.Token, Name: "Lee Leaver",
			Meta: commands.Meta{Actor: domain.Actor{UserID: first.UserID, Email: "leaver@acme.test"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := warm.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: ws.WorkspaceID, UserID: joined.UserID, Meta: admin}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := eventstore.NewAccounts(store, testCodec, 1).Delete(ctx, first.UserID, stamp(nil, nil), now); err != nil {
			t.Fatal(err)
		}
		if err := testKeys.Destroy(ctx, first.UserID); err != nil {
			t.Fatal(err)
		}
		fresh := invite(app())
		if fresh.Outcome != domain.OutcomeInvited || fresh.UserID == first.UserID {
			t.Errorf("a replica that never saw the workspace: re-invitation gave %s for %s, want invited as a new person (not %s)", fresh.Outcome, fresh.UserID, first.UserID)
		}
		cached := invite(warm)
		if cached.Outcome != domain.OutcomeAlreadyInvited || cached.UserID != fresh.UserID {
			t.Errorf("the replica that cached the old account: got %s for %s, want already_invited for the new person %s", cached.Outcome, cached.UserID, fresh.UserID)
		}
	})
}
