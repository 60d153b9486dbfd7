package messaging_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestTransientFailuresUntilTheLastRetryAreRecordedAsFailed(t *testing.T) {
	t.Parallel()
	pool, srv, r, ws := startMailing(t, smtptest.Options{Reject: func(string, int) error { return smtptest.Temporary }}, replicaOptions{}) // 3 retries
	r.invite(t, ws, 0, "busy@example.com")

	reason := failureReason(t, pool)
	if got := srv.Offers("busy@example.com"); got != 4 {
		t.Errorf("the address was offered %d times, want 4 (a try and 3 retries)", got)
	}
	if !strings.Contains(reason, "451") || !strings.Contains(reason, "retries") {
		t.Errorf("failure reason %q: want the last 451 answer after the retries", reason)
	}
}

// panicOnce panics on its first send, then delivers through next.
type panicOnce struct {
	next     commands.EmailSender
	panicked atomic.Bool
}

func (p *panicOnce) Send(ctx context.Context, e commands.Email) error {
	if p.panicked.CompareAndSwap(false, true) {
		panic("sender exploded")
	}
	return p.next.Send(ctx, e)
}

func TestAPanicIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	srv := smtptest.Start(t, smtptest.Options{})
	r := startReplica(t, pool, replicaOptions{sender: &panicOnce{next: smtpSender(t, srv.Addr)}})
	ws := r.workspace(t)
	r.invite(t, ws, 0, "ann@example.com")
	eventually(t, "InvitationEmailSent", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 1 })
	if got := len(srv.Messages()); got != 1 {
		t.Errorf("server received %d messages, want 1", got)
	}
}

func TestReplicasSideBySideMailEachInvitationOnce(t *testing.T) {
	t.Parallel()
	pool, srv, a, ws := startMailing(t, smtptest.Options{}, replicaOptions{})
	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	var addrs []string
	for i := range 30 {
		addrs = append(addrs, fmt.Sprintf("user%02d@example.com", i))
	}
	a.invite(t, ws, 0, strings.Join(addrs[:15], ","))
	b.invite(t, ws, 0, strings.Join(addrs[15:], ","))
	eventually(t, "30 InvitationEmailSent events", func() bool { return eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) == 30 })
	got := byRecipient(srv.Messages())
	for _, addr := range addrs {
		if got[addr] != 1 {
			t.Errorf("%s received %d e-mails, want 1", addr, got[addr])
		}
	}
	if n := eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})); n != 30 {
		t.Errorf("%d InvitationEmailSent events, want 30", n)
	}
}

// While the mailer waits to retry, the rest of the system must not wait with
// it: the event store's subscriptions read below the oldest running
// transaction, so a mailer holding one open through its backoff would stop
// every projection.
func TestProjectionsGoOnWhileTheMailerWaitsToRetry(t *testing.T) {
	t.Parallel()
	pool, srv, r, ws := startMailing(t, smtptest.Options{Reject: func(to string, _ int) error {
		if to == "busy@example.com" {
			return smtptest.Temporary
		}
		return nil
	}}, replicaOptions{retry: messaging.RetryPolicy{MaxRetries: 2, InitialInterval: time.Minute, MaxInterval: time.Minute}})
	r.invite(t, ws, 0, "busy@example.com")
	eventually(t, "the first, refused offer", func() bool { return srv.Offers("busy@example.com") == 1 })
	r.invite(t, ws, 0, "next@example.com")
	eventually(t, "the user list to show the next invitation while the mailer waits a minute", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE email = 'next@example.com'`) == 1
	})
}
