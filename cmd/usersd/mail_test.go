package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestParseMailConfig(t *testing.T) {
	t.Parallel()
	jwt := bytes.Repeat([]byte("j"), 32)
	key := strings.Repeat("k", 32)
	tests := []struct {
		name       string
		env        map[string]string
		public     string
		configured string // what takes usersd off the embedded default
		want       mailConfig
		wantErr    string
	}{
		{name: "defaults: the mailbox, links to localhost, key from the JWT secret",
			want: mailConfig{PublicURL: "http://localhost:8080", TokenKey: commands.DeriveTokenKey(jwt)}},
		{name: "public URL and key", public: "https://users.example.com", env: map[string]string{envTokenKey: key},
			want: mailConfig{PublicURL: "https://users.example.com", TokenKey: []byte(key)}},
		{name: "SMTP with its sender from the public URL", public: "https://users.example.com",
			env: map[string]string{envSMTPURL: "smtp://u:p@mail.example.com:587?starttls=required"},
			want: mailConfig{PublicURL: "https://users.example.com", TokenKey: commands.DeriveTokenKey(jwt),
				SMTP: &email.SMTPConfig{Host: "mail.example.com", Port: 587, TLS: email.STARTTLSRequired, Username: "u", Password: "p", From: "usersd@users.example.com"}}},
		{name: "SMTP behind an IP public URL", public: "http://10.0.0.1:8080", env: map[string]string{envSMTPURL: "smtps://mail.example.com"},
			want: mailConfig{PublicURL: "http://10.0.0.1:8080", TokenKey: commands.DeriveTokenKey(jwt),
				SMTP: &email.SMTPConfig{Host: "mail.example.com", Port: 465, TLS: email.ImplicitTLS, From: "usersd@localhost"}}},
		{name: "no mail configuration outside the embedded default", configured: envDatabaseURL,
			wantErr: "no mail configuration: with DATABASE_URL set, set SMTP_URL (smtp://host:port) to send invitation e-mails, or USERSD_DEV_MAILBOX=true"},
		{name: "nor with ESDB_URL", configured: envESDBURL, wantErr: "with ESDB_URL set, set SMTP_URL"},
		{name: "the development mailbox asked for outside the embedded default", configured: envDatabaseURL, env: map[string]string{envDevMailbox: "true"},
			want: mailConfig{PublicURL: "http://localhost:8080", TokenKey: commands.DeriveTokenKey(jwt), DevMailboxOutsideDefault: true}},
		{name: "the development mailbox asked for on the embedded default", env: map[string]string{envDevMailbox: "true"},
			want: mailConfig{PublicURL: "http://localhost:8080", TokenKey: commands.DeriveTokenKey(jwt)}},
		{name: "SMTP outside the embedded default", configured: envDatabaseURL, env: map[string]string{envSMTPURL: "smtps://mail.example.com"},
			want: mailConfig{PublicURL: "http://localhost:8080", TokenKey: commands.DeriveTokenKey(jwt),
				SMTP: &email.SMTPConfig{Host: "mail.example.com", Port: 465, TLS: email.ImplicitTLS, From: "usersd@localhost"}}},
		{name: "SMTP and the development mailbox", env: map[string]string{envSMTPURL: "smtps://mail.example.com", envDevMailbox: "true"}, wantErr: "both set"},
		{name: "the development mailbox refused without SMTP", env: map[string]string{envDevMailbox: "false"}, wantErr: "USERSD_DEV_MAILBOX=false and SMTP_URL is not set"},
		{name: "bad USERSD_DEV_MAILBOX", configured: envDatabaseURL, env: map[string]string{envDevMailbox: "yes please"}, wantErr: envDevMailbox},
		{name: "short key", env: map[string]string{envTokenKey: "short"}, wantErr: envTokenKey},
		{name: "bad SMTP URL", env: map[string]string{envSMTPURL: "http://mail.example.com"}, wantErr: envSMTPURL},
		{name: "password kept out of errors", env: map[string]string{envSMTPURL: "smtp://u:hunter2@mail.example.com:x"}, wantErr: envSMTPURL},
	}
	for _, tt := range tests {
		got, err := parseMailConfig(func(k string) string { return tt.env[k] }, tt.public, ":8080", jwt, tt.configured)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: got %v, want an error naming %s without the password", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got.PublicURL != tt.want.PublicURL || got.DevMailboxOutsideDefault != tt.want.DevMailboxOutsideDefault || !bytes.Equal(got.TokenKey, tt.want.TokenKey) || (got.SMTP == nil) != (tt.want.SMTP == nil) || (got.SMTP != nil && *got.SMTP != *tt.want.SMTP) {
			t.Errorf("%s: got %+v (SMTP %+v), want %+v (SMTP %+v)", tt.name, got, got.SMTP, tt.want, tt.want.SMTP)
		}
	}
}

func TestStartMailFillsTheDevelopmentMailbox(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	store := pgstore.New(pool, pgstore.WithLogger(discardLogger()))
	defer store.Close()
	cfg, err := parseMailConfig(func(string) string { return "" }, "https://users.example.com", ":8080", bytes.Repeat([]byte("j"), 32), "")
	if err != nil {
		t.Fatal(err)
	}
	codec := testCodec(t, pool)
	app := commands.NewApplication(eventstoretest.Deps(store, codec, linkSecrets(cfg.TokenKey)),
		commands.DefaultInvitationPolicy(), commands.Instrumentation{})
	ctx, cancel := context.WithCancel(context.Background())
	mailbox, wait, _, err := startMail(ctx, pool, eventstore.Source{Store: store, Codec: codec}, app, cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); wait() }()
	ws, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
		Name: "Acme", OwnerEmail: "owner@example.com", OwnerName: "Olga", Meta: commands.Meta{Actor: domain.Actor{System: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{
		WorkspaceID: ws.WorkspaceID, Emails: []string{"ann@example.com"}, Role: "Editor", Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://users.example.com/accept?token=" + res.Results[0].Token
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, err := mailbox.List(ctx, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 1 {
			if msgs[0].To != "ann@example.com" || strings.Count(msgs[0].Text, want) != 1 {
				t.Fatalf("mailbox message to %q, text:\n%s\nwant it to ann@example.com with %s once", msgs[0].To, msgs[0].Text, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mailbox holds %d messages after 20 s, want 1", len(msgs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
