package messaging_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testlog"
)

// TestACleanStopUnderLoadLogsNoError stops a replica while it mails a
// batch (a deploy's SIGTERM): a clean stop is no error, so the log has no
// ERROR line (watermill's own included), and the next replica mails the
// rest, each address once.
func TestACleanStopUnderLoadLogsNoError(t *testing.T) {
	t.Parallel()
	addrs := addresses("load%03d@example.com", 400)
	var buf testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pool, srv, a, ws := startMailing(t, smtptest.Options{}, replicaOptions{logger: logger})
	a.invite(t, ws, 0, strings.Join(addrs[:200], ","))
	a.invite(t, ws, 0, strings.Join(addrs[200:], ","))
	// Stop in the middle of the batch: some mailed, not all.
	eventually(t, "the first e-mails", func() bool { return len(srv.Messages()) >= 20 })
	a.stop()
	log := buf.String()
	if n := len(srv.Messages()); n >= len(addrs) {
		t.Logf("the replica mailed all %d before the stop; the stop came too late to test much", n)
	}
	var errs []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=ERROR") {
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		t.Errorf("a clean stop logged %d ERROR lines, want none:\n%s", len(errs), strings.Join(errs, "\n"))
	}

	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	// (Longer than eventually's 20 s: 400 e-mails on a busy machine.)
	deadline := time.Now().Add(2 * time.Minute)
	for eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})) != len(addrs) {
		if time.Now().After(deadline) {
			t.Fatalf("%d InvitationEmailSent events after 2 minutes, want %d", eventCount(t, pool, domain.EventName(domain.InvitationEmailSent{})), len(addrs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := byRecipient(srv.Messages())
	for _, addr := range addrs {
		if got[addr] != 1 {
			t.Errorf("%s received %d e-mails, want exactly 1", addr, got[addr])
		}
	}
	b.stop()
}
