package messaging_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/internal/testlog"
	"github.com/usersd/usersd/internal/testpoll"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

const publicURL = "https://usersd.example"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// linkKey is the link key of every replica of a test.
var linkKey = bytes.Repeat([]byte("L"), commands.MinTokenKeySize)

// replica is one usersd process: its own store, caches and e-mail service
// over a shared database. stop kills it mid-way.
type replica struct {
	deps   commands.Deps
	store  *pgstore.Store
	cancel context.CancelFunc
	done   chan struct{}
}

type replicaOptions struct {
	sender    commands.EmailSender // default: SMTP to smtpAddr
	smtpAddr  string
	retry     messaging.RetryPolicy
	onlyParts string       // "outbox": run only the process manager
	logger    *slog.Logger // default: logOnFailure
}

func smtpSender(t testing.TB, addr string) *email.SMTP {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	s, err := email.NewSMTP(email.SMTPConfig{Host: host, Port: p, From: "usersd@example.com"}, email.SMTPOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newReplica is a replica's store and application over pool, with nothing
// running yet.
func newReplica(t testing.TB, pool *pgxpool.Pool) *replica {
	t.Helper()
	store := pgstore.New(pool, pgstore.WithLogger(quiet))
	secrets, err := commands.NewHMACLinkSecrets(linkKey)
	if err != nil {
		t.Fatal(err)
	}
	deps := eventstoretest.Deps(store, testCodec, secrets)
	return &replica{deps: deps, store: store, done: make(chan struct{})}
}

// startReplica runs a replica's mailer and user list over pool.
func startReplica(t testing.TB, pool *pgxpool.Pool, o replicaOptions) *replica {
	t.Helper()
	r := newReplica(t, pool)
	store := r.store
	sender := o.sender
	if sender == nil {
		sender = smtpSender(t, o.smtpAddr)
	}
	if o.retry == (messaging.RetryPolicy{}) {
		o.retry = messaging.RetryPolicy{MaxRetries: 3, InitialInterval: 20 * time.Millisecond, MaxInterval: 100 * time.Millisecond}
	}
	if o.logger == nil {
		o.logger = logOnFailure(t)
	}
	svc, err := messaging.New(pool, r.app(), eventstore.Source{Store: store, Codec: testCodec}, sender, messaging.Options{
		PublicURL: publicURL, Logger: o.logger, Retry: o.retry, PollInterval: 20 * time.Millisecond,
		ExpiryMaxSleep: 200 * time.Millisecond,
		Runner:         projections.RunnerOptions{LockRetry: 50 * time.Millisecond, Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = projections.NewRunner(pool, userlist.New(), eventstore.Source{Store: store, Codec: testCodec}, projections.RunnerOptions{LockRetry: 50 * time.Millisecond, Logger: quiet}).Run(ctx)
	})
	wg.Go(func() {
		if o.onlyParts == "outbox" {
			_ = svc.RunOutbox(ctx)
			return
		}
		if err := svc.Run(ctx); err != nil {
			t.Errorf("service stopped with %v", err)
		}
	})
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

// app is the replica's application, with the default invitation policy.
func (r *replica) app() commands.Application {
	return r.application(commands.DefaultInvitationPolicy())
}

// application is the replica's application with the invitation policy p.
func (r *replica) application(p commands.InvitationPolicy) commands.Application {
	return commands.NewApplication(r.deps, p, commands.Instrumentation{})
}

// stop ends the replica and waits until it has stopped.
func (r *replica) stop() {
	r.cancel()
	<-r.done
	r.store.Close()
}

func (r *replica) workspace(t testing.TB) commands.CreateWorkspaceResult {
	t.Helper()
	res, err := r.app().Commands.CreateWorkspace.Handle(context.Background(), commands.CreateWorkspace{
		Name: "Acme", OwnerEmail: "owner@example.com", OwnerName: "Olga Owner",
		Meta: commands.Meta{Actor: domain.Actor{System: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r *replica) invite(t testing.TB, ws commands.CreateWorkspaceResult, ttl time.Duration, emails ...string) []domain.InviteResult {
	t.Helper()
	p := commands.DefaultInvitationPolicy()
	p.Limits = domain.InviteLimits{}
	if ttl > 0 {
		p.TTL = ttl
	}
	res, err := r.application(p).Commands.InviteUsers.Handle(context.Background(), commands.InviteUsers{
		WorkspaceID: ws.WorkspaceID, Emails: emails, Role: "Editor",
		Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}, CorrelationID: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Results
}

// startMailing gives a test a fresh database, an SMTP server answering as
// so says, and a replica mailing to it (o's smtpAddr is the server's), with
// a workspace.
func startMailing(t testing.TB, so smtptest.Options, o replicaOptions) (*pgxpool.Pool, *smtptest.Server, *replica, commands.CreateWorkspaceResult) {
	t.Helper()
	pool, _ := pgtest.NewService(t)
	srv := smtptest.Start(t, so)
	o.smtpAddr = srv.Addr
	r := startReplica(t, pool, o)
	return pool, srv, r, r.workspace(t)
}

// addresses makes n addresses from format and their index.
func addresses(format string, n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf(format, i)
	}
	return addrs
}

// failureReason waits for the one InvitationEmailFailed event and for the
// poison queue to keep its message, and answers the event's reason, opened:
// the events table holds it sealed (a mail server's answer may quote the
// address).
func failureReason(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	failed := domain.EventName(domain.InvitationEmailFailed{})
	eventually(t, "InvitationEmailFailed", func() bool { return eventCount(t, pool, failed) == 1 })
	var sealed string
	var user uuid.UUID
	if err := pool.QueryRow(context.Background(), `SELECT data->>'reason', (data->>'userId')::uuid FROM events WHERE type = $1`, failed).Scan(&sealed, &user); err != nil {
		t.Fatal(err)
	}
	if !pii.IsSealed(sealed) {
		t.Errorf("the stored reason %q is not sealed: a mail server's answer may quote the address", sealed)
	}
	keys, err := testKeys.Lookup(context.Background(), []uuid.UUID{user})
	if err != nil {
		t.Fatal(err)
	}
	reason, err := pii.Open(keys[user], user, sealed)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the poison queue to keep the message", func() bool {
		return count(t, pool, `SELECT count(*) FROM watermill_invitation_emails_poison`) == 1
	})
	return reason
}

// eventually waits up to 20 s for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testpoll.Until(t, 20*time.Second, what, cond)
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func eventCount(t testing.TB, pool *pgxpool.Pool, typ string) int {
	return count(t, pool, `SELECT count(*) FROM events WHERE type = $1`, typ)
}

var linkPattern = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `/accept\?token=([A-Za-z0-9_-]+)`)

// link reads the one link of a message's text part.
func link(t testing.TB, m smtptest.Message) string {
	t.Helper()
	_, text, html, err := m.Parts()
	if err != nil {
		t.Fatal(err)
	}
	found := linkPattern.FindAllStringSubmatch(text, -1)
	if len(found) != 1 {
		t.Fatalf("the text part holds %d accept links, want exactly 1:\n%s", len(found), text)
	}
	if !strings.Contains(html, found[0][0]) {
		t.Errorf("the HTML part does not link %s", found[0][0])
	}
	return found[0][1]
}

// byRecipient counts messages per recipient.
func byRecipient(msgs []smtptest.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			out[to]++
		}
	}
	return out
}

// outbox counts the messages in every partition of the queue that match
// where (a condition on payload, or "true").
func outbox(t testing.TB, pool *pgxpool.Pool, where string) int {
	t.Helper()
	n := 0
	for p := range messaging.Partitions {
		n += count(t, pool, `SELECT count(*) FROM watermill_`+messaging.PartitionTopic(p)+` WHERE `+where)
	}
	return n
}

// logOnFailure is a logger whose lines the test prints only if it fails.
func logOnFailure(t testing.TB) *slog.Logger {
	var buf testlog.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
