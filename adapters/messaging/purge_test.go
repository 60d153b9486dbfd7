package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// An account's deletion erases the mail kept for the person: queued and
// poisoned messages, delivery-log rows and development-mailbox copies;
// everyone else's stay.
func TestOutboxPurgesADeletedAccountsMail(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	ctx := context.Background()
	r := newReplica(t, pool)
	defer r.store.Close()
	accounts := r.deps.Accounts.(*eventstore.Accounts)
	ws := r.workspace(t)
	res := r.invite(t, ws, 0, "ann@example.com, bob@example.com")
	ann, bob := res[0], res[1]

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = projections.NewRunner(pool, messaging.NewOutbox(commands.SystemClock{}), eventstore.Source{Store: r.store, Codec: testCodec},
			projections.RunnerOptions{Logger: quiet, MinBackoff: 10 * time.Millisecond}).Run(runCtx)
	}()
	defer func() { cancel(); <-done }()
	eventually(t, "the outbox to hold both e-mails", func() bool { return outbox(t, pool, "true") == 2 })

	// What the mailer would have kept of both: a mailbox copy, a delivery
	// row, and for ann a poisoned message quoting her address.
	for _, inv := range []domain.InviteResult{ann, bob} {
		if _, err := pool.Exec(ctx, `INSERT INTO dev_mailbox (id, workspace_id, invitation_id, attempt, to_address, subject, text_body, html_body)
			VALUES ($1, $2, $3, 1, $4, 's', 'text', 'html')`, uuid.New(), ws.WorkspaceID, inv.InvitationID, inv.Email); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id, failure) VALUES ($1, 1, $2, $3)`,
			inv.InvitationID, ws.WorkspaceID, "550 no such user "+inv.Email); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO watermill_invitation_emails_poison (uuid, payload, metadata, transaction_id)
		VALUES ($1, json_build_object('userId', $2::text, 'invitationId', $3::text), json_build_object('reason_poisoned', $4::text), pg_current_xact_id())`,
		uuid.NewString(), ann.UserID.String(), ann.InvitationID.String(), "550 "+ann.Email); err != nil {
		t.Fatal(err)
	}

	if _, _, err := accounts.Delete(ctx, ann.UserID, domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: time.Now(), Actor: domain.Actor{System: true}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ann's messages to go", func() bool { return outbox(t, pool, "payload::jsonb->>'userId' = '"+ann.UserID.String()+"'") == 0 })
	for what, n := range map[string]int{
		"ann's mailbox copies":   count(t, pool, `SELECT count(*) FROM dev_mailbox WHERE invitation_id = $1`, ann.InvitationID),
		"ann's delivery rows":    count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE invitation_id = $1`, ann.InvitationID),
		"ann's poisoned message": count(t, pool, `SELECT count(*) FROM watermill_invitation_emails_poison`),
		"ann's address anywhere": count(t, pool, `SELECT count(*) FROM dev_mailbox d FULL JOIN mail_deliveries m ON false WHERE d::text ILIKE '%ann@%' OR m::text ILIKE '%ann@%'`),
	} {
		if n != 0 {
			t.Errorf("%s: %d left, want none", what, n)
		}
	}
	if n := outbox(t, pool, "payload::jsonb->>'userId' = '"+bob.UserID.String()+"'"); n != 1 {
		t.Errorf("bob's messages: %d, want 1", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM dev_mailbox WHERE invitation_id = $1`, bob.InvitationID) +
		count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE invitation_id = $1`, bob.InvitationID); n != 2 {
		t.Errorf("bob's mailbox and delivery rows: %d, want 2", n)
	}
}
