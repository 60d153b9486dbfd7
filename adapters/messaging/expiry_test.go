package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestExpiryFiresAfterARestartAndResendRevives(t *testing.T) {
	t.Parallel()
	pool, srv, a, ws := startMailing(t, smtptest.Options{}, replicaOptions{})
	const ttl = 3 * time.Second
	invited := time.Now()
	res := a.invite(t, ws, ttl, "ann@example.com")
	eventually(t, "the first e-mail", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 1 })
	a.stop()
	if time.Since(invited) >= ttl {
		t.Skip("the machine was too slow to stop the replica before the expiry")
	}

	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	eventually(t, "InvitationExpired", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationExpired{})) == 1 })
	if since := time.Since(invited); since < ttl {
		t.Errorf("expired after %s, before its time (%s)", since, ttl)
	}
	eventually(t, "the user list to show it expired", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE email = 'ann@example.com' AND expired`) == 1
	})

	p := commands.DefaultInvitationPolicy()
	p.Limits = domain.InviteLimits{}
	if _, err := b.application(p).Commands.ResendInvitation.Handle(context.Background(), commands.ResendInvitation{
		WorkspaceID: ws.WorkspaceID, UserID: res[0].UserID, Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the resend's e-mail", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 2 })
	eventually(t, "the user list to show it revived", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE email = 'ann@example.com' AND NOT expired`) == 1
	})
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("server received %d messages, want 2 (invitation and resend)", len(msgs))
	}
	if _, err := b.app().Commands.AcceptInvitation.Handle(context.Background(), commands.AcceptInvitation{Token: link(t, msgs[0]), Name: "Ann"}); domain.ErrorCode(err) != domain.CodeInvitationRevoked {
		t.Errorf("accept the first, expired link: got %v, want code %q", err, domain.CodeInvitationRevoked)
	}
	if _, err := b.app().Commands.AcceptInvitation.Handle(context.Background(), commands.AcceptInvitation{Token: link(t, msgs[1]), Name: "Ann"}); err != nil {
		t.Errorf("accept the resent link: %v", err)
	}
	if n := eventCount(t, pool, domain.EventName(domain.InvitationExpired{})); n != 1 {
		t.Errorf("%d InvitationExpired events, want 1", n)
	}
}
