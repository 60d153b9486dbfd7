package commands_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// A review's decision to change a role or revoke runs the ordinary command
// in the same append as the decision, both caused by the review; a refused
// one (the last Admin) appends nothing.
func TestAccessReviewDecisionsCarryOutTheOrdinaryCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, ed := e.ownerWith("ed@x.com", "Editor")
	id, admin := ws.WorkspaceID, ws.OwnerUserID
	pending := e.invite(id, admin, "Monitor", "pia@x.com").Results[0].UserID
	c := e.app.Commands

	rev, err := c.StartAccessReview.Handle(ctx, commands.StartAccessReview{WorkspaceID: id, Name: "Q4 review", Meta: as(admin)})
	if err != nil {
		t.Fatal(err)
	}
	if rev.Items != 3 || rev.Position.IsZero() {
		t.Fatalf("start: %+v, want 3 items (owner, Ed, Pia's invitation) and a position", rev)
	}
	late := e.join(id, admin, "late@x.com", "Editor")

	before := len(all(t, e.store))
	decide := func(user uuid.UUID, decision, role string) error {
		_, err := c.DecideAccessReviewItem.Handle(ctx, commands.DecideAccessReviewItem{
			WorkspaceID: id, ReviewID: rev.ReviewID, UserID: user, Decision: decision, Role: role, Meta: as(admin),
		})
		return err
	}
	wantCode(t, decide(admin, "revoke", ""), domain.CodeLastAdmin)
	wantCode(t, decide(late, "keep", ""), domain.CodeNotInReview)
	wantCode(t, decide(ed, "change_role", "Boss"), domain.CodeInvalidRole)
	_, err = c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: id, ReviewID: rev.ReviewID, Meta: as(admin)})
	wantCode(t, err, domain.CodeReviewIncomplete)
	if n := len(all(t, e.store)); n != before {
		t.Fatalf("refused decisions appended %d events, want none", n-before)
	}

	if err := decide(ed, "change_role", "monitor"); err != nil {
		t.Fatal(err)
	}
	if err := decide(pending, "revoke", ""); err != nil {
		t.Fatal(err)
	}
	if err := decide(admin, "keep", ""); err != nil {
		t.Fatal(err)
	}
	events := all(t, e.store)[before:]
	want := []string{"RoleChanged", "AccessReviewItemDecided", "InvitationRevoked", "AccessReviewItemDecided", "AccessReviewItemDecided"}
	if got := types(events); len(got) != len(want) {
		t.Fatalf("appended %v, want %v", got, want)
	}
	for i, ev := range events {
		rec, err := testCodec.DecodeOne(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != want[i] || rec.Metadata.CausationID != rev.ReviewID.String() {
			t.Errorf("event %d: %s caused by %q, want %s caused by the review %s", i, ev.Type, rec.Metadata.CausationID, want[i], rev.ReviewID)
		}
	}

	if _, err := c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: id, ReviewID: rev.ReviewID, Meta: as(admin)}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, decide(ed, "keep", ""), domain.CodeReviewCompleted)
	_, err = c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: id, ReviewID: rev.ReviewID, Meta: as(admin)})
	wantCode(t, err, domain.CodeReviewCompleted)
}
