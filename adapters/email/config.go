// Package email delivers invitation e-mails: over SMTP (github.com/wneessen/go-mail)
// when SMTP_URL is set, else into the development mailbox, a PostgreSQL
// table that the web UI lists.
package email

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// TLSMode is how an SMTP connection is encrypted.
type TLSMode int

const (
	// STARTTLSOpportunistic upgrades with STARTTLS when the server offers
	// it, else sends in plain text (smtp://).
	STARTTLSOpportunistic TLSMode = iota
	// STARTTLSRequired refuses a server that does not offer STARTTLS
	// (smtp://...?starttls=required).
	STARTTLSRequired
	// ImplicitTLS speaks TLS from the first byte (smtps://).
	ImplicitTLS
)

func (m TLSMode) String() string {
	switch m {
	case STARTTLSRequired:
		return "starttls-required"
	case ImplicitTLS:
		return "implicit-tls"
	}
	return "starttls-opportunistic"
}

// SMTPConfig is what SMTP_URL says.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      TLSMode
	Username string
	Password string
	// From is the sender address: the from query parameter, else
	// DefaultFrom of the caller.
	From string
}

// String describes the configuration without the password.
func (c SMTPConfig) String() string {
	user := ""
	if c.Username != "" {
		user = c.Username + "@"
	}
	return fmt.Sprintf("%s%s (%s)", user, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.TLS)
}

// ParseSMTPURL reads SMTP_URL:
//
//	smtp://[user:pass@]host[:port][?starttls=required][&from=addr]  (port 25)
//	smtps://[user:pass@]host[:port][?from=addr]                     (port 465)
//
// smtp:// uses STARTTLS when the server offers it; starttls=required insists
// on it; smtps:// is TLS from the start. Errors never repeat the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error quotes the whole URL, password included.
		return SMTPConfig{}, errors.New("not a URL: want smtp://[user:pass@]host:port or smtps://...")
	}
	var c SMTPConfig
	switch u.Scheme {
	case "smtp":
		c.Port, c.TLS = 25, STARTTLSOpportunistic
	case "smtps":
		c.Port, c.TLS = 465, ImplicitTLS
	default:
		return SMTPConfig{}, fmt.Errorf("scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return SMTPConfig{}, errors.New("want only smtp://[user:pass@]host:port, with no path")
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return SMTPConfig{}, errors.New("no host: want smtp://[user:pass@]host:port")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("port %q: want 1 to 65535", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		if c.Username == "" {
			return SMTPConfig{}, errors.New("a password without a user name")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// The query may hold the rest of a password with an unescaped
		// "?": never repeat it.
		return SMTPConfig{}, errors.New("the query is malformed (escape ?, #, / and % in a password)")
	}
	for k, v := range q {
		if len(v) != 1 {
			return SMTPConfig{}, fmt.Errorf("a query parameter is given %d times", len(v))
		}
		switch k {
		case "starttls":
			if c.TLS == ImplicitTLS {
				return SMTPConfig{}, errors.New("starttls with smtps://: smtps is TLS from the start")
			}
			switch strings.ToLower(v[0]) {
			case "required":
				c.TLS = STARTTLSRequired
			case "opportunistic":
				c.TLS = STARTTLSOpportunistic
			default:
				return SMTPConfig{}, errors.New("starttls: want required or opportunistic")
			}
		case "from":
			a, err := mail.ParseAddress(v[0])
			if err != nil {
				return SMTPConfig{}, errors.New("from: not an e-mail address")
			}
			c.From = a.Address
		default:
			// Not quoted: with an unescaped "?" in the password, the
			// "parameter" is the password.
			return SMTPConfig{}, errors.New("an unknown query parameter: want only starttls or from (escape ?, #, / and % in a password)")
		}
	}
	return c, nil
}
