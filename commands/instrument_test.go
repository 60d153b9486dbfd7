package commands_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

type observed struct {
	mu   sync.Mutex
	seen []string
}

func (o *observed) ObserveCommand(name, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, name+"="+outcome)
}

// One decorator observes every use case of the application: its name and
// outcome go to the observer (the metrics) and to a debug log line that
// holds no address, name or token.
func TestEveryUseCaseIsObserved(t *testing.T) {
	t.Parallel()
	e, _ := newDeletionEnv(t)
	obs := &observed{}
	var logs bytes.Buffer
	app := commands.NewApplication(e.deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Observer: obs,
	})
	ctx := context.Background()
	ws, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{Name: "Acme", OwnerEmail: "olga@secret.test", OwnerName: "Olga Secret", Meta: e.system})
	if err != nil {
		t.Fatal(err)
	}
	id, admin := ws.WorkspaceID, ws.OwnerUserID
	inv, err := app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: id, Emails: []string{"ann@secret.test"}, Role: "Editor", Meta: as(admin)})
	if err != nil {
		t.Fatal(err)
	}
	token := inv.Results[0].Token
	c, q := app.Commands, app.Queries
	run := func(_ any, _ error) {}
	run(q.LookupInvitation.Handle(ctx, commands.LookupInvitation{Token: "not-a-token"}))
	run(q.ComposeInvitationEmails.Handle(ctx, commands.ComposeInvitationEmails{WorkspaceID: id}))
	run(c.ResendInvitation.Handle(ctx, commands.ResendInvitation{WorkspaceID: id, UserID: inv.Results[0].UserID, Meta: as(admin)}))
	run(c.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: token, Name: "Ann Secret"}))
	run(c.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: id, UserID: admin, Role: "Editor", Meta: as(admin)}))
	run(c.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: id, UserID: uuid.New(), Meta: as(admin)}))
	run(c.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: id, UserID: admin, Meta: as(admin)}))
	run(c.ReactivateUser.Handle(ctx, commands.ReactivateUser{WorkspaceID: id, UserID: admin, Meta: as(admin)}))
	run(c.UpdateSettings.Handle(ctx, commands.UpdateSettings{WorkspaceID: id, Meta: as(admin)}))
	run(c.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: id, UserID: admin, Meta: as(admin)}))
	run(c.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: id}))
	run(c.RecordEmailOutcomes.Handle(ctx, commands.RecordEmailOutcomes{WorkspaceID: id}))
	run(c.AcceptAuditDivergence.Handle(ctx, commands.AcceptAuditDivergence{WorkspaceID: id, Seq: 1, LiveHash: "a", RebuiltHash: "b", Meta: e.system}))
	rev, err := c.StartAccessReview.Handle(ctx, commands.StartAccessReview{WorkspaceID: id, Name: "Q4", Meta: as(admin)})
	run(rev, err)
	run(c.DecideAccessReviewItem.Handle(ctx, commands.DecideAccessReviewItem{WorkspaceID: id, ReviewID: rev.ReviewID, UserID: uuid.New(), Decision: "keep", Meta: as(admin)}))
	run(c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: id, ReviewID: rev.ReviewID, Meta: as(admin)}))
	run(c.SubscribeWebhook.Handle(ctx, commands.SubscribeWebhook{WorkspaceID: id, URL: "https://hooks.example.com/secret-path", Events: []string{"*"}, Meta: as(admin)}))
	run(c.RemoveWebhook.Handle(ctx, commands.RemoveWebhook{WorkspaceID: id, WebhookID: uuid.New(), Meta: as(admin)}))
	run(c.ReplayWebhook.Handle(ctx, commands.ReplayWebhook{WorkspaceID: id, WebhookID: uuid.New(), Meta: as(admin)}))
	run(c.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: admin, Meta: e.system}))

	want := []string{
		"create_workspace=ok", "invite_users=ok", "lookup_invitation=invalid_token", "compose_invitation_emails=ok",
		"resend_invitation=ok", "accept_invitation=invitation_revoked", "change_role=last_admin", "remove_user=user_not_found",
		"suspend_user=last_admin", "reactivate_user=ok", "update_settings=ok", "record_login=ok",
		"expire_invitations=ok", "record_email_outcomes=ok", "accept_audit_divergence=ok",
		"start_access_review=ok", "decide_access_review_item=not_in_review", "complete_access_review=review_incomplete",
		"subscribe_webhook=ok", "remove_webhook=webhook_not_found", "replay_webhook=webhook_not_found",
		"delete_account=last_admin",
	}
	if !slices.Equal(obs.seen, want) {
		t.Errorf("observed\n%v\nwant\n%v", obs.seen, want)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d log lines, want one per use case (%d):\n%s", len(lines), len(want), logs.String())
	}
	for _, secret := range []string{"@", "Secret", token, "whsec_", "secret-path"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
	if wantCode := domain.CodeLastAdmin; !strings.Contains(logs.String(), "command=change_role outcome="+string(wantCode)) {
		t.Errorf("no line for the refused role change:\n%s", logs.String())
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("wrapped: %w", domain.ErrLastAdmin), "last_admin"},
		{fmt.Errorf("append: %w", context.Canceled), "cancelled"},
		{context.DeadlineExceeded, "cancelled"},
		{errors.New("connection refused"), "internal"},
	} {
		if got := commands.Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
