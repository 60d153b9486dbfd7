package messaging_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
)

// TestEachDeliveryIsLoggedBeforeTheConnectionsNextCommand narrows the one
// window in which a crash sends an e-mail twice (docs/email.md) to what
// SMTP cannot avoid: the server's answer to the end of the message and
// our insert of the delivery log's row. Whatever the mailer sends next on
// that connection (the next message's MAIL, or an RSET) must find the row
// written: a mailer that waits for another round trip first (an RSET
// after every message) widens the window by that round trip.
func TestEachDeliveryIsLoggedBeforeTheConnectionsNextCommand(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	var mu sync.Mutex
	var late []string
	srv := smtptest.Start(t, smtptest.Options{NextCommand: func(m smtptest.Message) {
		h, _, _, err := m.Parts()
		if err != nil {
			t.Error(err)
			return
		}
		inv, n, _ := strings.Cut(h.Get(email.HeaderInvitation), "/")
		id, err := uuid.Parse(inv)
		attempt, aerr := strconv.Atoi(n)
		if err != nil || aerr != nil {
			t.Errorf("header %s: %q", email.HeaderInvitation, h.Get(email.HeaderInvitation))
			return
		}
		// The row comes after the server's answer; the client may go on
		// with the next command first only if it does not wait for the
		// answer to that command before writing the row.
		// (Less than the client's timeout, below.)
		deadline := time.Now().Add(10 * time.Second)
		for count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE invitation_id = $1 AND attempt = $2`, id, attempt) == 0 {
			if time.Now().After(deadline) {
				mu.Lock()
				late = append(late, m.To[0])
				mu.Unlock()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}})
	var addrs []string
	for i := range 4 {
		addrs = append(addrs, fmt.Sprintf("window%d@example.com", i))
	}
	host, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	sender, err := email.NewSMTP(email.SMTPConfig{Host: host, Port: p, From: "usersd@example.com"}, email.SMTPOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	r := startReplica(t, pool, replicaOptions{sender: sender})
	ws := r.workspace(t)
	r.invite(t, ws, 0, strings.Join(addrs, ","))
	deadline := time.Now().Add(2 * time.Minute) // each late row holds its connection 10 s
	for eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) != len(addrs) {
		if time.Now().After(deadline) {
			t.Fatalf("%d InvitationEmailSent events after 2 minutes, want %d", eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})), len(addrs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop()
	mu.Lock()
	defer mu.Unlock()
	if len(late) > 0 {
		t.Errorf("the next command on the connection came before the delivery log's row of the e-mail to %v (a round trip more in the window)", late)
	}
}
