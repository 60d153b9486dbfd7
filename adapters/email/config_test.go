package email_test

import (
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/email"
)

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    email.SMTPConfig
		wantErr string
	}{
		{raw: "smtp://mail.example.com:2525", want: email.SMTPConfig{Host: "mail.example.com", Port: 2525, TLS: email.STARTTLSOpportunistic}},
		{raw: "smtp://mail.example.com", want: email.SMTPConfig{Host: "mail.example.com", Port: 25, TLS: email.STARTTLSOpportunistic}},
		{raw: "smtp://mail.example.com:587?starttls=required", want: email.SMTPConfig{Host: "mail.example.com", Port: 587, TLS: email.STARTTLSRequired}},
		{raw: "smtps://mail.example.com", want: email.SMTPConfig{Host: "mail.example.com", Port: 465, TLS: email.ImplicitTLS}},
		{raw: "smtps://u%40x:p%3Ass@mail.example.com:4650", want: email.SMTPConfig{Host: "mail.example.com", Port: 4650, TLS: email.ImplicitTLS, Username: "u@x", Password: "p:ss"}},
		{raw: "smtp://apikey:s3cret@[::1]:25?from=noreply%40example.com", want: email.SMTPConfig{Host: "::1", Port: 25, Username: "apikey", Password: "s3cret", From: "noreply@example.com"}},
		{raw: "http://mail.example.com", wantErr: "scheme"},
		{raw: "mail.example.com:25", wantErr: "scheme"},
		{raw: "smtp://", wantErr: "no host"},
		{raw: "smtp://mail.example.com:0", wantErr: "port"},
		{raw: "smtp://mail.example.com:99999", wantErr: "port"},
		{raw: "smtp://mail.example.com/inbox", wantErr: "no path"},
		{raw: "smtp://mail.example.com?starttls=maybe", wantErr: "starttls"},
		{raw: "smtps://mail.example.com?starttls=required", wantErr: "smtps"},
		{raw: "smtp://mail.example.com?tls=on", wantErr: "unknown query parameter"},
		{raw: "smtp://mail.example.com?from=not-an-address", wantErr: "from"},
		{raw: "smtp://:secret@mail.example.com", wantErr: "without a user"},
		{raw: "smtp://user:hunter2@mail.example.com:x", wantErr: "URL"},
		// An unescaped "?" makes the rest of the password the query.
		{raw: "smtp://user:?hunter2@mail.example.com:587", wantErr: "unknown query parameter"},
		{raw: "smtp://user:2525?hunter2=x@mail.example.com&starttls=hunter2", wantErr: "starttls"},
		{raw: "smtp://user:2525?from=hunter2", wantErr: "from"},
	}
	for _, tt := range tests {
		got, err := email.ParseSMTPURL(tt.raw)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSMTPURL(%q): got %+v, %v; want an error about %q", tt.raw, got, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseSMTPURL(%q): error %q repeats the password", tt.raw, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSMTPURL(%q): got %+v, %v; want %+v", tt.raw, got, err, tt.want)
		}
	}
}
