// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on
// 127.0.0.1 for tests: it keeps what it receives and answers what the test
// scripts.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options script a server. The zero value accepts everything in plain text.
type Options struct {
	// TLS, if set, is offered through STARTTLS, or spoken from the first
	// byte with Implicit.
	TLS      *tls.Config
	Implicit bool
	// Username and Password, if set, are required (AUTH PLAIN).
	Username, Password string
	// Reject, if set, may refuse a recipient: it gets the address and how
	// many times this address was offered before (0 the first time).
	// Return an *smtp.SMTPError such as Temporary or Permanent.
	Reject func(to string, seen int) error
	// SMTPUTF8 offers the SMTPUTF8 extension (RFC 6531): addresses with
	// UTF-8 before the @.
	SMTPUTF8 bool
	// NextCommand, if set, is called when the command that follows an
	// accepted message on its connection (the next MAIL, or RSET)
	// arrives, before it is answered: with the message. A client that
	// waits for that answer before it records the delivery would wait
	// on NextCommand.
	NextCommand func(accepted Message)
	// Received, if set, is called with each message the server accepts,
	// before it answers the end of the message.
	Received func(Message)
	// Forget keeps neither the messages nor the offers (Messages and
	// Offers answer none), so that a long benchmark's memory stays flat.
	Forget bool
}

// Temporary is a 451 answer, Permanent a 550 one.
var (
	Temporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	Permanent = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	Data []byte
	// UTF8 tells that the sender asked for SMTPUTF8 in its MAIL command.
	UTF8 bool
}

// Server is a running test server.
type Server struct {
	Addr string

	opts Options
	mu   sync.Mutex
	msgs []Message
	seen map[string]int
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, seen: map[string]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = opts.TLS == nil
	srv.EnableSMTPUTF8 = opts.SMTPUTF8
	var l net.Listener
	var err error
	if opts.TLS != nil && opts.Implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", opts.TLS)
	} else {
		srv.TLSConfig = opts.TLS
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Messages answers a copy of what the server accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Offers answers how many times to was offered as a recipient.
func (s *Server) Offers(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[strings.ToLower(to)]
}

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
	utf8   bool
	// accepted is the message the last DATA accepted, until the next
	// command; dataReset skips the reset go-smtp does itself after DATA.
	accepted  *Message
	dataReset bool
}

// next reports the command after an accepted message to NextCommand.
func (x *session) next() {
	if m := x.accepted; m != nil {
		x.accepted = nil
		if x.s.opts.NextCommand != nil {
			x.s.opts.NextCommand(*m)
		}
	}
}

func (x *session) AuthMechanisms() []string {
	if x.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != x.s.opts.Username || pass != x.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	x.next()
	if x.s.opts.Username != "" && !x.authed {
		return smtp.ErrAuthRequired
	}
	x.from = from
	x.utf8 = opts != nil && opts.UTF8
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	key := strings.ToLower(to)
	seen := x.s.seen[key]
	if !x.s.opts.Forget {
		x.s.seen[key]++
	}
	x.s.mu.Unlock()
	if x.s.opts.Reject != nil {
		if err := x.s.opts.Reject(to, seen); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: x.from, To: x.to, Data: b, UTF8: x.utf8}
	if x.s.opts.Received != nil {
		x.s.opts.Received(m)
	}
	if !x.s.opts.Forget {
		x.s.mu.Lock()
		x.s.msgs = append(x.s.msgs, m)
		x.s.mu.Unlock()
	}
	x.accepted, x.dataReset = &m, true
	return nil
}

func (x *session) Reset() {
	if x.dataReset {
		x.dataReset = false // go-smtp's own, after DATA
	} else {
		x.next() // an RSET
	}
	x.from, x.to, x.utf8 = "", nil, false
}
func (x *session) Logout() error { return nil }

// Parts answers the message's headers and its decoded text and HTML parts.
func (m Message) Parts() (mail.Header, string, string, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return nil, "", "", err
	}
	var text, html string
	err = walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, func(ct, body string) {
		switch ct {
		case "text/plain":
			text = body
		case "text/html":
			html = body
		}
	})
	return msg.Header, text, html, err
}

func walk(contentType, encoding string, body io.Reader, leaf func(ct, body string)) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, leaf); err != nil {
				return err
			}
		}
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	leaf(mt, string(b))
	return nil
}
