package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/positive"
)

// HeaderInvitation names the invitation and attempt an e-mail belongs to
// ("<invitation id>/<attempt>"), for support and for tests; it is no secret.
const HeaderInvitation = "X-Usersd-Invitation"

// SMTPOptions tune an SMTP sender. The zero value is usable.
type SMTPOptions struct {
	// Timeout bounds connecting and each exchange. Default 30 s.
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (tests trust their own
	// certificate with it). Default: verify the server as Host.
	TLSConfig *tls.Config
	// HELO is the name we greet with. Default "localhost".
	HELO string
	// MaxConns bounds the connections open at once. Default 4.
	MaxConns int
}

// SMTP sends e-mails through one SMTP server, keeping up to MaxConns
// connections open between messages (a batch of invitations costs a few
// handshakes, not one per address). It is safe for concurrent use.
type SMTP struct {
	cfg  SMTPConfig
	opts SMTPOptions

	slots chan struct{} // one per connection in use
	idle  chan *conn    // connected clients not in use
}

// conn is one connection: go-mail's client (its settings) and the SMTP
// session it dialled, which tells the server's extensions.
type conn struct {
	c  *mail.Client
	sc *smtp.Client
}

func (c *conn) close() { _ = c.c.CloseWithSMTPClient(c.sc) }

// errNoSMTPUTF8 refuses an address with UTF-8 before the @ on a server
// without SMTPUTF8: sent anyway, it would arrive mangled or not at all.
var errNoSMTPUTF8 = errors.New("the recipient's address has non-ASCII characters before the @, " +
	"and the SMTP server does not offer SMTPUTF8 (RFC 6531), which such an address needs; " +
	"it cannot be delivered through this server")

var _ commands.EmailSender = (*SMTP)(nil)

// NewSMTP returns a sender for cfg; it connects on the first Send. cfg.From
// must be set.
func NewSMTP(cfg SMTPConfig, opts SMTPOptions) (*SMTP, error) {
	if cfg.From == "" {
		return nil, errors.New("smtp: no sender address (From)")
	}
	opts.Timeout = positive.Or(opts.Timeout, 30*time.Second)
	if opts.HELO == "" {
		opts.HELO = "localhost"
	}
	opts.MaxConns = positive.Or(opts.MaxConns, 4)
	return &SMTP{cfg: cfg, opts: opts, slots: make(chan struct{}, opts.MaxConns), idle: make(chan *conn, opts.MaxConns)}, nil
}

func (s *SMTP) newClient() (*mail.Client, error) {
	o := []mail.Option{
		mail.WithPort(s.cfg.Port), mail.WithTimeout(s.opts.Timeout), mail.WithHELO(s.opts.HELO),
		// The connection is checked by using it; a failure on a reused
		// connection is retried once on a new one (Send).
		mail.WithoutNoop(),
		// No RSET after a message the server took: it ends the
		// transaction itself (RFC 5321, 4.1.1.4), and Send would return
		// only after that extra round trip, during which a crash sends
		// the e-mail again (the delivery log's row comes after Send).
		// Failed MAIL or RCPT commands are still reset.
		mail.WithoutRset(),
	}
	switch s.cfg.TLS {
	case ImplicitTLS:
		o = append(o, mail.WithSSL())
	case STARTTLSRequired:
		o = append(o, mail.WithTLSPolicy(mail.TLSMandatory))
	default:
		o = append(o, mail.WithTLSPolicy(mail.TLSOpportunistic))
	}
	if s.opts.TLSConfig != nil {
		o = append(o, mail.WithTLSConfig(s.opts.TLSConfig))
	}
	if s.cfg.Username != "" {
		o = append(o, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	return mail.NewClient(s.cfg.Host, o...)
}

// Send delivers e. A refusal with a 5xx code is a permanent
// *commands.DeliveryError; anything else that fails is a transient one.
//
// An internationalised domain travels in its ASCII form (A-labels), which
// every server takes; an address with UTF-8 before the @ only to a server
// that offers SMTPUTF8, and to another one fails for good.
func (s *SMTP) Send(ctx context.Context, e commands.Email) error {
	to, ascii := e.To.ASCII()
	msg, err := s.message(e, to)
	if err != nil {
		return &commands.DeliveryError{Permanent: true, Reason: redact(err.Error())}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return &commands.DeliveryError{Reason: ctx.Err().Error()}
	}
	defer func() { <-s.slots }()
	var c *conn
	select {
	case c = <-s.idle:
	default:
	}
	reused := c != nil
	c, err = s.sendOn(ctx, c, msg, !ascii)
	if err != nil && reused && !isServerAnswer(err) && !errors.Is(err, errNoSMTPUTF8) {
		// The server may have closed an idle connection: one new try.
		c, err = s.sendOn(ctx, nil, msg, !ascii)
	}
	if c != nil {
		s.idle <- c // never blocks: at most MaxConns clients exist
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// sendOn sends msg on c, connecting a new client if c is nil; utf8 says
// that the recipient needs SMTPUTF8. It answers the client to keep, nil if
// the connection is no good any more.
func (s *SMTP) sendOn(ctx context.Context, c *conn, msg *mail.Msg, utf8 bool) (*conn, error) {
	if c == nil {
		mc, err := s.newClient()
		if err != nil {
			return nil, err
		}
		sc, err := mc.DialToSMTPClientWithContext(ctx)
		if err != nil {
			return nil, err
		}
		c = &conn{c: mc, sc: sc}
	}
	if ok, _ := c.sc.Extension("SMTPUTF8"); utf8 && !ok {
		return c, errNoSMTPUTF8
	}
	err := c.c.SendWithSMTPClient(c.sc, msg)
	if err != nil && msg.IsDelivered() {
		// The server took the message; what failed came after it: a
		// success, on a connection we no longer trust. Sending again
		// would be a copy.
		c.close()
		return nil, nil
	}
	if err != nil && !isServerAnswer(err) {
		c.close()
		return nil, err
	}
	return c, err
}

// Close ends the idle connections.
func (s *SMTP) Close() error {
	for {
		select {
		case c := <-s.idle:
			c.close()
		default:
			return nil
		}
	}
}

// message builds e's message to the address to (e.To as the server may
// carry it).
func (s *SMTP) message(e commands.Email, to string) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if err := m.To(to); err != nil {
		return nil, errors.New("recipient address refused by the mail library")
	}
	m.Subject(e.Subject)
	m.SetDate()
	m.SetMessageID()
	m.SetGenHeader(HeaderInvitation, e.InvitationID.String()+"/"+strconv.Itoa(e.Attempt))
	m.SetBodyString(mail.TypeTextPlain, e.Text)
	m.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	return m, nil
}

// isServerAnswer reports whether err is the server's 4xx/5xx answer to a
// message (the connection itself is fine).
func isServerAnswer(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.ErrorCode() >= 400
}

// classify turns a send failure into a DeliveryError without addresses.
func classify(err error) *commands.DeliveryError {
	var se *mail.SendError
	if errors.As(err, &se) && se.ErrorCode() >= 400 {
		return &commands.DeliveryError{Permanent: se.ErrorCode() >= 500, Reason: redact(se.Error())}
	}
	if errors.Is(err, errNoSMTPUTF8) {
		return &commands.DeliveryError{Permanent: true, Reason: err.Error()}
	}
	if errors.Is(err, mail.ErrNoSupportedAuthDiscovered) {
		// Retrying cannot mend it: the server offers no mechanism we
		// would use on this connection. PLAIN and LOGIN send the password
		// as it is, so they are used only over TLS (STARTTLS or smtps://).
		return &commands.DeliveryError{Permanent: true, Reason: "the SMTP server offers no authentication usersd uses on this connection: " +
			"PLAIN and LOGIN need TLS (a server offering STARTTLS, or smtps://); check SMTP_URL"}
	}
	return &commands.DeliveryError{Reason: redact(err.Error())}
}

var addressLike = regexp.MustCompile(`[^\s<>,;:"'()\[\]]+@[^\s<>,;:"'()\[\]]+`)

// redact keeps a server's answer but not the addresses in it: go-mail names
// the affected recipients, and servers often quote them.
func redact(s string) string {
	if i := strings.Index(s, ", affected recipient"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, ", affected message ID"); i >= 0 {
		s = s[:i]
	}
	return addressLike.ReplaceAllString(s, "<address>")
}
