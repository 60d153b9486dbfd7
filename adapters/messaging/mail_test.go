package messaging_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestOneWorkingEmailPerAddressOfABatch(t *testing.T) {
	t.Parallel()
	pool, srv, r, ws := startMailing(t, smtptest.Options{}, replicaOptions{})
	addrs := []string{"ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "eve@example.com"}
	results := r.invite(t, ws, 0, strings.Join(addrs, ", "))

	eventually(t, "5 InvitationEmailSent events", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 5 })
	msgs := srv.Messages()
	if got := byRecipient(msgs); len(msgs) != 5 || len(got) != 5 {
		t.Fatalf("server received %d messages for %v, want one per address", len(msgs), got)
	}
	for _, m := range msgs {
		h, _, _, _ := m.Parts()
		if !strings.Contains(h.Get("Subject"), "Acme") {
			t.Errorf("subject %q does not name the workspace", h.Get("Subject"))
		}
		_, text, _, _ := m.Parts()
		for _, want := range []string{"Olga Owner", "Editor", "Acme", "expires"} {
			if !strings.Contains(text, want) {
				t.Errorf("text part lacks %q:\n%s", want, text)
			}
		}
		token := link(t, m)
		res, err := r.app().Commands.AcceptInvitation.Handle(context.Background(), commands.AcceptInvitation{Token: token, Name: "Someone"})
		if err != nil {
			t.Fatalf("accept the link mailed to %v: %v", m.To, err)
		}
		if res.WorkspaceID != ws.WorkspaceID {
			t.Errorf("accepted into %s, want %s", res.WorkspaceID, ws.WorkspaceID)
		}
	}
	// The user list showed them sent before they were accepted: the
	// projection applies both in order, so check the last state instead.
	if n := outbox(t, pool, "true"); n != len(results) {
		t.Errorf("outbox holds %d messages, want %d", n, len(results))
	}
	if n := outbox(t, pool, `payload::text LIKE '%token%' OR payload::text LIKE '%@%'`); n != 0 {
		t.Errorf("%d outbox messages hold a token or an address, want none", n)
	}
}

func TestTransientFailureIsRetriedAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	pool, srv, r, ws := startMailing(t, smtptest.Options{Reject: func(_ string, seen int) error {
		if seen == 0 {
			return smtptest.Temporary // 451, then 250
		}
		return nil
	}}, replicaOptions{})
	r.invite(t, ws, 0, "ann@example.com")

	eventually(t, "InvitationEmailSent", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 1 })
	if got := len(srv.Messages()); got != 1 {
		t.Errorf("server received %d messages, want exactly 1", got)
	}
	if got := srv.Offers("ann@example.com"); got != 2 {
		t.Errorf("the address was offered %d times, want 2 (451, then 250)", got)
	}
	if n := eventCount(t, pool, domain.EventName(domain.InvitationEmailFailed{})); n != 0 {
		t.Errorf("%d InvitationEmailFailed events, want 0", n)
	}
	eventually(t, "the user list to show the e-mail sent", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE email = 'ann@example.com' AND email_status = 'sent'`) == 1
	})
}

func TestPermanentFailureIsRecordedAtOnce(t *testing.T) {
	t.Parallel()
	pool, srv, r, ws := startMailing(t, smtptest.Options{Reject: func(string, int) error { return smtptest.Permanent }}, replicaOptions{})
	r.invite(t, ws, 0, "gone@example.com")

	reason := failureReason(t, pool)
	if got := srv.Offers("gone@example.com"); got != 1 {
		t.Errorf("the address was offered %d times, want 1 (no retry after a 550)", got)
	}
	if !strings.Contains(reason, "550") || strings.Contains(reason, "@") {
		t.Errorf("failure reason %q: want the 550 answer without the address", reason)
	}
	eventually(t, "the user list to show the e-mail failed", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE email_status = 'failed'`) == 1
	})
}

// crashingSender delivers through next, and after the n-th delivery kills
// the replica before the mailer can log it: the documented window.
type crashingSender struct {
	next  commands.EmailSender
	n     int64
	sent  atomic.Int64
	crash func()
}

func (s *crashingSender) Send(ctx context.Context, e commands.Email) error {
	if err := s.next.Send(ctx, e); err != nil {
		return err
	}
	if s.sent.Add(1) == s.n {
		s.crash()
	}
	return nil
}

func TestRestartsLoseNoEmailAndDuplicateAtMostTheWindow(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	srv := smtptest.Start(t, smtptest.Options{})
	addrs := addresses("user%02d@example.com", 20)

	// 1. Killed between the outbox and the send: only the process manager
	// ran, so every e-mail is in the outbox and none is sent.
	a := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr, onlyParts: "outbox"})
	ws := a.workspace(t)
	a.invite(t, ws, 0, strings.Join(addrs[:10], ","))
	eventually(t, "10 outbox messages", func() bool { return outbox(t, pool, "true") == 10 })
	a.stop()
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages sent by a replica without a mailer", n)
	}

	// 2. Killed after the 4th delivery, before logging it.
	var b *replica
	crash := &crashingSender{next: smtpSender(t, srv.Addr), n: 4}
	crash.crash = func() { go b.cancel() }
	b = startReplica(t, pool, replicaOptions{sender: crash})
	b.invite(t, ws, 0, strings.Join(addrs[10:], ","))
	<-b.done

	// 3. A new replica finishes the work.
	c := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	eventually(t, "20 InvitationEmailSent events", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 20 })
	got := byRecipient(srv.Messages())
	dups := 0
	for _, a := range addrs {
		switch got[a] {
		case 1:
		case 2:
			dups++
		default:
			t.Errorf("%s received %d e-mails, want 1", a, got[a])
		}
	}
	t.Logf("%d of %d addresses received a copy", dups, len(addrs))
	// The window: the e-mails between the server's 250 and the delivery
	// log's row when the replica died, at most one per partition.
	if dups > messaging.Partitions {
		t.Errorf("%d addresses received a copy, want at most %d (the crash's window)", dups, messaging.Partitions)
	}
	if n := eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})); n != 20 {
		t.Errorf("%d InvitationEmailSent events, want 20", n)
	}
	c.stop()
}

// stoppingSender stops the replica while the server is answering its n-th
// e-mail, as a deploy's SIGTERM does: the e-mail still goes out, after the
// message's context has ended.
type stoppingSender struct {
	next commands.EmailSender
	n    int64
	sent atomic.Int64
	stop func()
}

func (s *stoppingSender) Send(ctx context.Context, e commands.Email) error {
	if s.sent.Add(1) == s.n {
		s.stop()
		<-ctx.Done() // the router has stopped: this message's context ended
	}
	return s.next.Send(context.WithoutCancel(ctx), e)
}

// A stop is not a crash: an e-mail the server accepted while the replica
// was stopping is logged anyway, so the next replica sends no copy.
func TestAStopWhileSendingSendsNoCopy(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	srv := smtptest.Start(t, smtptest.Options{})
	addrs := addresses("stop%02d@example.com", 8)
	var a *replica
	stopping := &stoppingSender{next: smtpSender(t, srv.Addr), n: 3}
	stopping.stop = func() { a.cancel() }
	a = startReplica(t, pool, replicaOptions{sender: stopping})
	ws := a.workspace(t)
	a.invite(t, ws, 0, strings.Join(addrs, ","))
	<-a.done
	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	eventually(t, "8 InvitationEmailSent events", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == len(addrs) })
	got := byRecipient(srv.Messages())
	for _, addr := range addrs {
		if got[addr] != 1 {
			t.Errorf("%s received %d e-mails, want exactly 1", addr, got[addr])
		}
	}
	b.stop()
}
