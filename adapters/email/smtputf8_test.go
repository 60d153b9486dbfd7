package email_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/commands"
)

// TestSMTPSendsInternationalAddressesAsTheServerAllows: an internationalised
// domain travels in its ASCII form (A-labels) to any server; an address
// with UTF-8 before the @ goes only to a server that offers SMTPUTF8, and
// to another one fails for good, with a reason, before any recipient is
// offered: never sent mangled.
func TestSMTPSendsInternationalAddressesAsTheServerAllows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	plain := smtptest.Start(t, smtptest.Options{})
	s := sender(t, plain.Addr, email.SMTPConfig{}, nil)
	if err := s.Send(ctx, testEmail("jane@münchen.de")); err != nil {
		t.Fatalf("an ASCII local part with a Unicode domain: %v", err)
	}
	err := s.Send(ctx, testEmail("jörg@münchen.de"))
	var de *commands.DeliveryError
	if !errors.As(err, &de) || !de.Permanent || !strings.Contains(de.Reason, "SMTPUTF8") || strings.Contains(de.Reason, "jörg") {
		t.Fatalf("UTF-8 before the @ without SMTPUTF8: got %v, want a permanent failure naming SMTPUTF8 and not the address", err)
	}
	msgs := plain.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != "jane@xn--mnchen-3ya.de" {
		t.Fatalf("server without SMTPUTF8 received %+v, want one message to jane@xn--mnchen-3ya.de", msgs)
	}
	if n := plain.Offers("jörg@münchen.de") + plain.Offers("jörg@xn--mnchen-3ya.de"); n != 0 {
		t.Errorf("the address with UTF-8 before the @ was offered %d times, want never", n)
	}
	h, _, _, err := msgs[0].Parts()
	if err != nil {
		t.Fatal(err)
	}
	if to := h.Get("To"); !strings.Contains(to, "jane@xn--mnchen-3ya.de") {
		t.Errorf("To header %q, want the ASCII form", to)
	}

	utf8 := smtptest.Start(t, smtptest.Options{SMTPUTF8: true})
	s = sender(t, utf8.Addr, email.SMTPConfig{}, nil)
	if err := s.Send(ctx, testEmail("jörg@münchen.de")); err != nil {
		t.Fatalf("UTF-8 before the @ with SMTPUTF8: %v", err)
	}
	msgs = utf8.Messages()
	if len(msgs) != 1 || !msgs[0].UTF8 || len(msgs[0].To) != 1 || msgs[0].To[0] != "jörg@xn--mnchen-3ya.de" {
		t.Fatalf("server with SMTPUTF8 received %+v, want one SMTPUTF8 message to jörg@xn--mnchen-3ya.de", msgs)
	}
	if !strings.Contains(string(msgs[0].Data), "jörg@xn--mnchen-3ya.de") {
		t.Errorf("the message's To does not hold the address in UTF-8:\n%s", msgs[0].Data)
	}
}
