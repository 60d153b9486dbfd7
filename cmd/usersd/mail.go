package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/httpapi"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/commands"
)

// Configuration of invitation e-mails (docs/email.md). USERSD_PUBLIC_URL,
// the base of the links, is read with the other serve settings (publicURL).
const (
	envSMTPURL    = "SMTP_URL"
	envTokenKey   = "USERSD_TOKEN_KEY"
	envDevMailbox = "USERSD_DEV_MAILBOX"
)

// mailConfig is what the e-mail service reads.
type mailConfig struct {
	// SMTP is nil when SMTP_URL is unset: mail goes to the development
	// mailbox.
	SMTP *email.SMTPConfig
	// PublicURL is the base of links, without a trailing slash.
	PublicURL string
	// TokenKey derives invitation link secrets (linkSecrets).
	TokenKey []byte
	// DevMailboxOutsideDefault is true when USERSD_DEV_MAILBOX=true turned
	// the development mailbox on outside the embedded default: start
	// warns that working links sit in plain text in the database.
	DevMailboxOutsideDefault bool
}

// parseMailConfig reads SMTP_URL, USERSD_DEV_MAILBOX and USERSD_TOKEN_KEY.
// public is the configured public URL ("" if none: links then point to
// localhost on httpAddr's port, see linkBase); jwtSecret gives the default
// token key. configured names what takes usersd off the embedded default
// ("" on it, see configuredBy): there, without SMTP_URL, mail goes to the
// development mailbox; elsewhere that takes USERSD_DEV_MAILBOX=true, since
// the mailbox keeps working links in plain text. Errors are usage errors
// naming the variables.
func parseMailConfig(getenv func(string) string, public, httpAddr string, jwtSecret []byte, configured string) (mailConfig, error) {
	c := mailConfig{PublicURL: linkBase(public, httpAddr)}
	if v := tokenKeySetting.get(getenv); v != "" {
		if len(v) < commands.MinTokenKeySize {
			return mailConfig{}, usageErrorf("%s is %d bytes long: want at least %d (e.g. openssl rand -hex 32)", envTokenKey, len(v), commands.MinTokenKeySize)
		}
		c.TokenKey = []byte(v)
	} else {
		if len(jwtSecret) == 0 {
			return mailConfig{}, usageErrorf("%s is not set and there is no JWT secret to derive it from", envTokenKey)
		}
		c.TokenKey = commands.DeriveTokenKey(jwtSecret)
	}
	if raw := strings.TrimSpace(smtpURLSetting.get(getenv)); raw != "" {
		s, err := email.ParseSMTPURL(raw)
		if err != nil {
			return mailConfig{}, usageErrorf("%s: %v", envSMTPURL, err)
		}
		if s.From == "" {
			s.From = defaultFrom(c.PublicURL)
		}
		c.SMTP = &s
	}
	devMailbox, devSet := false, false
	if v := strings.TrimSpace(devMailboxSetting.get(getenv)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return mailConfig{}, usageErrorf("%s=%q: want true or false", envDevMailbox, v)
		}
		devMailbox, devSet = b, true
	}
	switch {
	case c.SMTP != nil && devMailbox:
		return mailConfig{}, usageErrorf("%s and %s=true are both set: invitation e-mails go to one place; unset one of them", envSMTPURL, envDevMailbox)
	case c.SMTP != nil:
	case devSet && !devMailbox:
		return mailConfig{}, usageErrorf("%s=false and %s is not set: invitation e-mails have nowhere to go; set %s (smtp://host:port)", envDevMailbox, envSMTPURL, envSMTPURL)
	case !devSet && configured != "":
		return mailConfig{}, usageErrorf("no mail configuration: with %s set, set %s (smtp://host:port) to send invitation e-mails, "+
			"or %s=true to keep them in the development mailbox (for development only: its working links sit in plain text in the database)",
			configured, envSMTPURL, envDevMailbox)
	case configured != "":
		c.DevMailboxOutsideDefault = true
	}
	return c, nil
}

// defaultFrom is the sender address when SMTP_URL names none: usersd at the
// public URL's host name, or at localhost when that is an IP address.
func defaultFrom(public string) string {
	u, err := url.Parse(public)
	if err == nil {
		if _, err := netmail.ParseAddress("usersd@" + u.Hostname()); err == nil && !strings.ContainsAny(u.Hostname(), ":") && net.ParseIP(u.Hostname()) == nil {
			return "usersd@" + u.Hostname()
		}
	}
	return "usersd@localhost"
}

// linkSecrets is the derivation of invitation link secrets under key (the
// USERSD_TOKEN_KEY, or by default a key derived from USERSD_JWT_SECRET).
// Every replica and the mailer must use the same key.
func linkSecrets(key []byte) commands.LinkSecrets {
	s, err := commands.NewHMACLinkSecrets(key)
	if err != nil {
		panic(err) // the configuration checked the key's size
	}
	return s
}

// startMail starts the invitation e-mail service (process manager, mailer,
// outcome recorder, expiry) until ctx ends. app must derive link secrets
// with linkSecrets(cfg.TokenKey). It answers the development mailbox for
// the API (nil when mail goes to SMTP), wait, which returns once the
// service has stopped, and health, which tells readiness whether its
// process manager's projection works (messaging.Service.Health).
func startMail(ctx context.Context, pool *pgxpool.Pool, src eventstore.Source, app commands.Application, cfg mailConfig, log *slog.Logger) (mailbox httpapi.Mailbox, wait func(), health func(context.Context) error, err error) {
	var sender commands.EmailSender
	if cfg.SMTP != nil {
		s, err := email.NewSMTP(*cfg.SMTP, email.SMTPOptions{})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", envSMTPURL, err)
		}
		sender = s
		log.Info("mail: invitation e-mails go out over SMTP", "server", cfg.SMTP.String(), "public_url", cfg.PublicURL)
	} else {
		box := email.NewMailbox(pool)
		sender, mailbox = box, devMailbox{box}
		if cfg.DevMailboxOutsideDefault {
			log.Warn("mail: "+envDevMailbox+"=true: invitation e-mails go to the development mailbox, whose working links sit in plain text in the database and in GET /v1/dev/mailbox; for development only, set "+envSMTPURL+" in production",
				"public_url", cfg.PublicURL)
		} else {
			log.Info("mail: SMTP_URL is unset; invitation e-mails go to the development mailbox", "public_url", cfg.PublicURL)
		}
	}
	svc, err := messaging.New(pool, app, src, sender, messaging.Options{PublicURL: cfg.PublicURL, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("mail: stopped", "err", err)
		}
		if s, ok := sender.(*email.SMTP); ok {
			_ = s.Close()
		}
	}()
	return mailbox, func() { <-done }, svc.Health, nil
}

// devMailbox shows the development mailbox to the API.
type devMailbox struct{ box *email.Mailbox }

func (m devMailbox) List(ctx context.Context, workspaces []uuid.UUID, limit int) ([]httpapi.MailboxMessage, error) {
	msgs, err := m.box.List(ctx, workspaces, limit)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.MailboxMessage, len(msgs))
	for i, x := range msgs {
		out[i] = httpapi.MailboxMessage(x)
	}
	return out, nil
}
