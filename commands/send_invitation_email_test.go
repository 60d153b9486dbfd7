package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// decoded reads the store's whole history as the process manager sees it.
func decoded(t *testing.T, s eventstore.Store) []domain.RecordedEvent {
	t.Helper()
	return decodeAll(t, all(t, s))
}

func TestInvitationEmailsRebuildTheLinksTheCommandsAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, res := e.ownerInvites("Editor", "ann@x.com, bob@x.com")
	resend, err := e.app.Commands.ResendInvitation.Handle(ctx, commands.ResendInvitation{
		WorkspaceID: ws.WorkspaceID, UserID: res[1].UserID, Meta: as(ws.OwnerUserID),
	})
	if err != nil {
		t.Fatal(err)
	}

	cmds := commands.InvitationEmailsFor(decoded(t, e.store), e.clock.Now())
	if len(cmds) != 3 {
		t.Fatalf("got %d e-mail commands, want 3 (two invitations, one resend): %+v", len(cmds), cmds)
	}
	wantTokens := []string{res[0].Token, "", resend.Token} // bob's first link died with the resend
	compose := func(c commands.SendInvitationEmail) (commands.InvitationEmail, error) {
		t.Helper()
		res, err := e.app.Queries.ComposeInvitationEmails.Handle(ctx, commands.ComposeInvitationEmails{WorkspaceID: c.WorkspaceID, Emails: []commands.SendInvitationEmail{c}})
		if err != nil || len(res) != 1 {
			t.Fatalf("compose: %d results, %v; want one, nil", len(res), err)
		}
		return res[0].Mail, res[0].Err
	}
	for i, c := range cmds {
		mail, err := compose(c)
		if wantTokens[i] == "" {
			if !errors.Is(err, commands.ErrEmailNotNeeded) {
				t.Errorf("command %d (a replaced attempt): got %v, want ErrEmailNotNeeded", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("compose command %d: %v", i, err)
		}
		if mail.Token != wantTokens[i] {
			t.Errorf("command %d: token %q, want the one the command answered %q", i, mail.Token, wantTokens[i])
		}
		if mail.WorkspaceName != "Acme" || mail.Role != domain.RoleEditor || mail.InviterEmail != "owner@example.com" || mail.InviterName != "Olga Owner" {
			t.Errorf("command %d: e-mail %+v, want workspace Acme, role Editor, inviter Olga Owner <owner@example.com>", i, mail)
		}
	}
	if cmds[2].Attempt != 2 || cmds[0].Attempt != domain.FirstAttempt {
		t.Errorf("attempts %d and %d, want 1 and 2", cmds[0].Attempt, cmds[2].Attempt)
	}
	mail, err := compose(cmds[0])
	if err != nil {
		t.Fatal(err)
	}
	e.accept(mail.Token, "Ann")
	if _, err := compose(cmds[0]); !errors.Is(err, commands.ErrEmailNotNeeded) {
		t.Errorf("compose after acceptance: got %v, want ErrEmailNotNeeded", err)
	}
}

func TestInvitationEmailsSkipExpiredInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ownerInvites("Editor", "ann@x.com")
	events := decoded(t, e.store)
	if got := len(commands.InvitationEmailsFor(events, e.clock.Now())); got != 1 {
		t.Errorf("before expiry: %d commands, want 1", got)
	}
	if got := len(commands.InvitationEmailsFor(events, e.clock.Now().Add(8*24*time.Hour))); got != 0 {
		t.Errorf("after expiry: %d commands, want 0", got)
	}
}

func TestRecordEmailOutcomesIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, res := e.ownerInvites("Editor", "ann@x.com, bob@x.com")
	h := e.app.Commands.RecordEmailOutcomes
	batch := commands.RecordEmailOutcomes{WorkspaceID: ws.WorkspaceID, Outcomes: []commands.EmailOutcome{
		{InvitationID: res[0].InvitationID, Attempt: 1},
		{InvitationID: res[1].InvitationID, Attempt: 1, Failure: "550 5.1.1 mailbox unavailable"},
	}}
	for range 2 {
		if _, err := h.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var sent, failed int
	for _, ev := range all(t, e.store) {
		switch ev.Type {
		case "InvitationEmailSent":
			sent++
		case "InvitationEmailFailed":
			failed++
		}
	}
	if sent != 1 || failed != 1 {
		t.Errorf("after recording the batch twice: %d sent and %d failed events, want 1 and 1", sent, failed)
	}
}
