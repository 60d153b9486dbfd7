package email_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
)

func TestMailboxKeepsOneMessagePerAttemptNewestFirst(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	ctx := context.Background()
	box := email.NewMailbox(pool)
	wsA, wsB := uuid.New(), uuid.New()
	inv := uuid.New()
	send := func(ws, inv uuid.UUID, attempt int, subject string) {
		t.Helper()
		err := box.Send(ctx, commands.Email{WorkspaceID: ws, InvitationID: inv, Attempt: attempt, To: "ann@example.com", Subject: subject, Text: "t", HTML: "h"})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(wsA, inv, 1, "first")
	send(wsA, inv, 1, "first again") // a redelivery: kept once
	send(wsA, inv, 2, "resent")
	send(wsB, uuid.New(), 1, "other workspace")

	all, err := box.List(ctx, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range all {
		subjects = append(subjects, m.Subject)
	}
	if len(all) != 3 || all[0].Subject != "other workspace" || all[2].Subject != "first" {
		t.Fatalf("List(all): got %q, want [other workspace resent first]", subjects)
	}
	mine, err := box.List(ctx, []uuid.UUID{wsA}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 1 || mine[0].Subject != "resent" || mine[0].WorkspaceID != wsA || mine[0].InvitationID != inv || mine[0].To != "ann@example.com" {
		t.Fatalf("List(workspace A, 1): got %+v, want the resent message", mine)
	}
	if none, err := box.List(ctx, []uuid.UUID{}, 10); err != nil || len(none) != 0 {
		t.Fatalf("List(no workspace): got %d messages, %v; want none", len(none), err)
	}
}
