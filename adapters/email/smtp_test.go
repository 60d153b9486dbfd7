package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testnet"
)

func sender(t *testing.T, addr string, cfg email.SMTPConfig, tlsCfg *tls.Config) *email.SMTP {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	cfg.From = "usersd@example.com"
	s, err := email.NewSMTP(cfg, email.SMTPOptions{Timeout: 5 * time.Second, TLSConfig: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testEmail(to string) commands.Email {
	return commands.Email{
		WorkspaceID: uuid.New(), InvitationID: uuid.New(), Attempt: 2, To: domain.Email(to),
		Subject: "Join Acme", Text: "Open https://usersd.example/accept?token=abc=def to join.", HTML: "<p>Join</p>",
	}
}

func TestSMTPDeliversTextAndHTML(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := sender(t, srv.Addr, email.SMTPConfig{}, nil)
	e := testEmail("ann@example.com")
	for range 2 { // the second one goes over the same connection
		if err := s.Send(context.Background(), e); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("server received %d messages, want 2", len(msgs))
	}
	h, text, html, err := msgs[0].Parts()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Get(email.HeaderInvitation), e.InvitationID.String()+"/2"; got != want {
		t.Errorf("%s: got %q, want %q", email.HeaderInvitation, got, want)
	}
	if h.Get("Subject") != "Join Acme" || msgs[0].To[0] != "ann@example.com" || msgs[0].From != "usersd@example.com" {
		t.Errorf("envelope or subject: from %q to %v subject %q", msgs[0].From, msgs[0].To, h.Get("Subject"))
	}
	if text != e.Text || html != e.HTML {
		t.Errorf("parts: text %q html %q, want %q and %q", text, html, e.Text, e.HTML)
	}
}

func TestSMTPClassifiesFailures(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{Reject: func(to string, _ int) error {
		if strings.HasPrefix(to, "later") {
			return smtptest.Temporary
		}
		// Servers often quote the address they refuse.
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no mailbox " + to}
	}})
	s := sender(t, srv.Addr, email.SMTPConfig{}, nil)
	for _, tt := range []struct {
		to        string
		permanent bool
	}{{"later@example.com", false}, {"gone@example.com", true}, {"later@example.com", false}} {
		e := testEmail(tt.to)
		err := s.Send(context.Background(), e)
		var de *commands.DeliveryError
		if !errors.As(err, &de) || de.Permanent != tt.permanent {
			t.Fatalf("Send to %s: got %v, want a DeliveryError with Permanent %v", tt.to, err, tt.permanent)
		}
		if strings.Contains(de.Error(), "@") {
			t.Errorf("Send to %s: error %q names an address", tt.to, de)
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages, want 0", n)
	}
}

func TestSMTPConnectionRefusedIsTransient(t *testing.T) {
	t.Parallel()
	addr := testnet.FreeAddr(t)
	err := sender(t, addr, email.SMTPConfig{}, nil).Send(context.Background(), testEmail("ann@example.com"))
	var de *commands.DeliveryError
	if !errors.As(err, &de) || de.Permanent {
		t.Fatalf("Send to a closed port: got %v, want a transient DeliveryError", err)
	}
}

func TestSMTPTLSModesAndAuth(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := selfSigned(t)
	tests := []struct {
		name    string
		server  smtptest.Options
		cfg     email.SMTPConfig
		wantErr bool
	}{
		{name: "opportunistic STARTTLS with auth", server: smtptest.Options{TLS: serverTLS, Username: "u", Password: "p"},
			cfg: email.SMTPConfig{TLS: email.STARTTLSOpportunistic, Username: "u", Password: "p"}},
		{name: "required STARTTLS offered", server: smtptest.Options{TLS: serverTLS}, cfg: email.SMTPConfig{TLS: email.STARTTLSRequired}},
		{name: "required STARTTLS not offered", server: smtptest.Options{}, cfg: email.SMTPConfig{TLS: email.STARTTLSRequired}, wantErr: true},
		{name: "implicit TLS with auth", server: smtptest.Options{TLS: serverTLS, Implicit: true, Username: "u", Password: "p"},
			cfg: email.SMTPConfig{TLS: email.ImplicitTLS, Username: "u", Password: "p"}},
		{name: "wrong password", server: smtptest.Options{TLS: serverTLS, Username: "u", Password: "p"},
			cfg: email.SMTPConfig{Username: "u", Password: "nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, tt.server)
			err := sender(t, srv.Addr, tt.cfg, clientTLS).Send(context.Background(), testEmail("ann@example.com"))
			if tt.wantErr {
				var de *commands.DeliveryError
				if !errors.As(err, &de) || de.Permanent {
					t.Fatalf("got %v, want a transient DeliveryError (a configuration or server problem)", err)
				}
				if len(srv.Messages()) != 0 {
					t.Fatal("the server received the message anyway")
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(srv.Messages()) != 1 {
				t.Fatalf("server received %d messages, want 1", len(srv.Messages()))
			}
		})
	}
}

// A server without TLS that asks for a password gets none: PLAIN would send
// it as it is. The refusal is permanent and says what to change, rather
// than a transient error retried for minutes.
func TestSMTPSendsNoPasswordWithoutTLS(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p"})
	err := sender(t, srv.Addr, email.SMTPConfig{TLS: email.STARTTLSOpportunistic, Username: "u", Password: "p"}, nil).
		Send(context.Background(), testEmail("ann@example.com"))
	var de *commands.DeliveryError
	if !errors.As(err, &de) || !de.Permanent || !strings.Contains(de.Reason, "need TLS") {
		t.Fatalf("got %v, want a permanent DeliveryError saying PLAIN and LOGIN need TLS", err)
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("the server received the message anyway")
	}
}

func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client
}
