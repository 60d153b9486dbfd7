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

	"github.com/usersd/usersd/commands"
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

	slots chan struct{}     // one per connection in use
	idle  chan *mail.Client // connected clients not in use
}

var _ commands.EmailSender = (*SMTP)(nil)

// NewSMTP returns a sender for cfg; it connects on the first Send. cfg.From
// must be set.
func NewSMTP(cfg SMTPConfig, opts SMTPOptions) (*SMTP, error) {
	if cfg.From == "" {
		return nil, errors.New("smtp: no sender address (From)")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.HELO == "" {
		opts.HELO = "localhost"
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4
	}
	return &SMTP{cfg: cfg, opts: opts, slots: make(chan struct{}, opts.MaxConns), idle: make(chan *mail.Client, opts.MaxConns)}, nil
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
func (s *SMTP) Send(ctx context.Context, e commands.Email) error {
	msg, err := s.message(e)
	if err != nil {
		return &commands.DeliveryError{Permanent: true, Reason: redact(err.Error())}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return &commands.DeliveryError{Reason: ctx.Err().Error()}
	}
	defer func() { <-s.slots }()
	var c *mail.Client
	select {
	case c = <-s.idle:
	default:
	}
	reused := c != nil
	c, err = s.sendOn(ctx, c, msg)
	if err != nil && reused && !isServerAnswer(err) {
		// The server may have closed an idle connection: one new try.
		c, err = s.sendOn(ctx, nil, msg)
	}
	if c != nil {
		s.idle <- c // never blocks: at most MaxConns clients exist
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// sendOn sends msg on c, connecting a new client if c is nil. It answers
// the client to keep, nil if the connection is no good any more.
func (s *SMTP) sendOn(ctx context.Context, c *mail.Client, msg *mail.Msg) (*mail.Client, error) {
	if c == nil {
		var err error
		if c, err = s.newClient(); err != nil {
			return nil, err
		}
		if err := c.DialWithContext(ctx); err != nil {
			return nil, err
		}
	}
	err := c.Send(msg)
	if err != nil && msg.IsDelivered() {
		// The server took the message; what failed came after it: a
		// success, on a connection we no longer trust. Sending again
		// would be a copy.
		_ = c.Close()
		return nil, nil
	}
	if err != nil && !isServerAnswer(err) {
		_ = c.Close()
		return nil, err
	}
	return c, err
}

// Close ends the idle connections.
func (s *SMTP) Close() error {
	for {
		select {
		case c := <-s.idle:
			_ = c.Close()
		default:
			return nil
		}
	}
}

func (s *SMTP) message(e commands.Email) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if err := m.To(string(e.To)); err != nil {
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
