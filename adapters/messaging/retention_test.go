package messaging_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email"
	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// newSweeper is a sweeper over pool with r's application.
func newSweeper(r *replica, pool *pgxpool.Pool, o messaging.SweeperOptions) *messaging.Sweeper {
	app := r.app()
	if o.Logger == nil {
		o.Logger = quiet
	}
	return messaging.NewSweeper(pool, app.Queries.ComposeInvitationEmails, app.Commands.RecordEmailOutcomes, o)
}

func sweep(t *testing.T, s *messaging.Sweeper) messaging.SweepReport {
	t.Helper()
	rep, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return rep
}

// unacknowledged counts the messages of every partition after the
// mailer's offset.
func unacknowledged(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	n := 0
	for p := range messaging.Partitions {
		topic := messaging.PartitionTopic(p)
		n += count(t, pool, `SELECT count(*) FROM watermill_`+topic+` m WHERE NOT EXISTS (
			SELECT 1 FROM watermill_offsets_`+topic+` o WHERE o.consumer_group = $1
			AND (m.transaction_id, m."offset") <= (o.last_processed_transaction_id, o.offset_acked))`, messaging.ConsumerGroup)
	}
	return n
}

func deliveryRows(t testing.TB, pool *pgxpool.Pool, inv uuid.UUID) int {
	return count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE invitation_id = $1`, inv)
}

func messagesOf(t testing.TB, pool *pgxpool.Pool, inv uuid.UUID) int {
	return outbox(t, pool, "payload::jsonb->>'invitationId' = '"+inv.String()+"'")
}

// The crash-window guarantee survives the sweeper, even with every
// retention at zero: it keeps the delivery row of an attempt that may
// still be mailed, a row whose outcome is not recorded yet, and every
// message not acknowledged; a redelivery of everything the outbox holds
// after a sweep mails no copy. What it does delete (the rows of accepted
// and revoked invitations, and then their acknowledged messages) nothing
// needs.
func TestSweepingKeepsWhatDeDuplicationNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, srv, a, ws := startMailing(t, smtptest.Options{}, replicaOptions{})
	res := a.invite(t, ws, 0, "pending@example.com", "accepted@example.com", "revoked@example.com", "unrecorded@example.com")
	inv := map[string]domain.InviteResult{}
	for _, r := range res {
		inv[strings.TrimSuffix(string(r.Email), "@example.com")] = r
	}
	eventually(t, "four recorded outcomes", func() bool {
		return count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE recorded_at IS NOT NULL`) == 4
	})
	tokens := map[string]string{}
	for _, m := range srv.Messages() {
		tokens[strings.TrimSuffix(m.To[0], "@example.com")] = link(t, m)
	}
	for _, who := range []string{"accepted", "unrecorded"} {
		if _, err := a.app().Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: tokens[who], Name: who}); err != nil {
			t.Fatalf("accept %s: %v", who, err)
		}
	}
	if _, err := a.app().Commands.RemoveUser.Handle(ctx, commands.RemoveUser{
		WorkspaceID: ws.WorkspaceID, UserID: inv["revoked"].UserID, Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
	}); err != nil {
		t.Fatal(err)
	}
	a.stop()

	// The crash cases: an outcome not recorded yet (a crash between the
	// row and its recording), and no message acknowledged (a crash before
	// every acknowledgement).
	if _, err := pool.Exec(ctx, `UPDATE mail_deliveries SET recorded_at = NULL WHERE invitation_id = $1`, inv["unrecorded"].InvitationID); err != nil {
		t.Fatal(err)
	}
	for p := range messaging.Partitions {
		if _, err := pool.Exec(ctx, `UPDATE watermill_offsets_`+messaging.PartitionTopic(p)+` SET offset_acked = 0, last_processed_transaction_id = '0'`); err != nil {
			t.Fatal(err)
		}
	}
	s := newSweeper(a, pool, messaging.SweeperOptions{Batch: 2}) // every retention zero
	rep := sweep(t, s)
	if got := outbox(t, pool, "true"); got != 4 {
		t.Errorf("outbox after the sweep: %d messages, want all 4 (none is acknowledged)", got)
	}
	for who, want := range map[string]int{"pending": 1, "unrecorded": 1, "accepted": 0, "revoked": 0} {
		if got := deliveryRows(t, pool, inv[who].InvitationID); got != want {
			t.Errorf("delivery rows of %s after the sweep: %d, want %d", who, got, want)
		}
	}
	if rep.Pruned[messaging.KindDeliveries] != 2 || rep.Pruned[messaging.KindOutbox] != 0 {
		t.Errorf("pruned %v, want 2 delivery rows and no message", rep.Pruned)
	}

	// Everything the outbox holds is delivered again: nothing is mailed twice.
	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	eventually(t, "the mailer to acknowledge every message again", func() bool { return unacknowledged(t, pool) == 0 })
	eventually(t, "the unrecorded outcome to be recorded", func() bool {
		return count(t, pool, `SELECT count(*) FROM mail_deliveries WHERE recorded_at IS NULL`) == 0
	})
	b.stop()
	if got := byRecipient(srv.Messages()); len(srv.Messages()) != 4 {
		t.Errorf("e-mails per recipient after the redelivery: %v, want one each (no copy)", got)
	}

	rep = sweep(t, s)
	for who, want := range map[string][2]int{"pending": {1, 1}, "unrecorded": {0, 0}, "accepted": {0, 0}, "revoked": {0, 0}} {
		if rows, msgs := deliveryRows(t, pool, inv[who].InvitationID), messagesOf(t, pool, inv[who].InvitationID); rows != want[0] || msgs != want[1] {
			t.Errorf("%s after the second sweep: %d delivery rows and %d messages, want %d and %d", who, rows, msgs, want[0], want[1])
		}
	}
	if rep.Pruned[messaging.KindDeliveries] != 1 || rep.Pruned[messaging.KindOutbox] != 3 {
		t.Errorf("second sweep pruned %v, want 1 delivery row and 3 messages", rep.Pruned)
	}
	// The pending invitation's link still works.
	if _, err := b.app().Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: tokens["pending"], Name: "P"}); err != nil {
		t.Errorf("accept the pending invitation after the sweeps: %v", err)
	}
}

// A poisoned message goes once its retention is over and its invitation
// has no delivery row left, after its failure is recorded: a message whose
// failure was never logged gets InvitationEmailFailed then, which the user
// list shows. Younger messages, and those whose invitation still has a
// delivery row, stay.
func TestPoisonedMessagesGoOnceTheirFailureIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewService(t)
	r := startReplica(t, pool, replicaOptions{onlyParts: "outbox", sender: email.NewMailbox(pool)})
	ws := r.workspace(t)
	res := r.invite(t, ws, 0, "lost@example.com", "logged@example.com", "young@example.com")
	lost, logged, young := res[0], res[1], res[2]
	eventually(t, "the outbox to hold the three e-mails", func() bool { return outbox(t, pool, "true") == 3 })

	poison := func(i domain.InviteResult, age string) {
		t.Helper()
		for p := range messaging.Partitions {
			if _, err := pool.Exec(ctx, `INSERT INTO watermill_invitation_emails_poison (uuid, payload, metadata, transaction_id, created_at)
				SELECT uuid, payload, json_build_object('reason_poisoned', 'boom'), pg_current_xact_id(), localtimestamp - $2::interval
				FROM watermill_`+messaging.PartitionTopic(p)+` WHERE payload::jsonb->>'invitationId' = $1`, i.InvitationID.String(), age); err != nil {
				t.Fatal(err)
			}
		}
	}
	poison(lost, "31 days")
	poison(logged, "31 days")
	poison(young, "29 days")
	ghost := fmt.Sprintf(`{"workspaceId": %q, "invitationId": %q, "attempt": 1}`, uuid.New(), uuid.New())
	for _, payload := range []string{`{"nonsense": true}`, `{"invitationId": "not-a-uuid", "attempt": 1}`, ghost} {
		if _, err := pool.Exec(ctx, `INSERT INTO watermill_invitation_emails_poison (uuid, payload, transaction_id, created_at)
			VALUES ($1, $2, pg_current_xact_id(), localtimestamp - interval '40 days')`, uuid.NewString(), payload); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id, failure, recorded_at) VALUES ($1, 1, $2, '550', now())`,
		logged.InvitationID, ws.WorkspaceID); err != nil {
		t.Fatal(err)
	}

	s := newSweeper(r, pool, messaging.SweeperOptions{Retention: messaging.DefaultRetention()})
	rep := sweep(t, s)
	if rep.Pruned[messaging.KindPoison] != 4 {
		t.Errorf("pruned %d poisoned messages, want 4 (lost's, the two that are no e-mail, and the one of no workspace)", rep.Pruned[messaging.KindPoison])
	}
	rows, _ := pool.Query(ctx, `SELECT payload::jsonb->>'invitationId' FROM watermill_invitation_emails_poison`)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{logged.InvitationID.String(), young.InvitationID.String()}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("poison queue after the sweep: %v, want logged's and young's %v", left, want)
	}
	failed := domain.EventName(domain.InvitationEmailFailed{})
	if n := count(t, pool, `SELECT count(*) FROM events WHERE type = $1 AND data->>'invitationId' = $2`, failed, lost.InvitationID.String()); n != 1 {
		t.Errorf("InvitationEmailFailed of lost's e-mail: %d, want 1", n)
	}
	eventually(t, "the user list to show lost's e-mail failed", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE invitation_id = $1 AND email_status = 'failed'`, lost.InvitationID) == 1
	})
	if rep := sweep(t, s); rep.Pruned[messaging.KindPoison] != 0 {
		t.Errorf("a second sweep pruned %d poisoned messages, want none", rep.Pruned[messaging.KindPoison])
	}
	if n := eventCount(t, pool, failed); n != 1 {
		t.Errorf("InvitationEmailFailed events after two sweeps: %d, want 1", n)
	}
}

// recordingObserver keeps what the sweeper reports.
type recordingObserver struct {
	mu     sync.Mutex
	sweeps map[string][]int64
	tables map[string]messaging.TableStats
	swept  chan struct{}
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{sweeps: map[string][]int64{}, tables: map[string]messaging.TableStats{}, swept: make(chan struct{}, 100)}
}

func (o *recordingObserver) ObserveRetentionSweep(kind string, pruned int64, _ bool) {
	o.mu.Lock()
	o.sweeps[kind] = append(o.sweeps[kind], pruned)
	o.mu.Unlock()
	if kind == messaging.KindOutbox {
		select {
		case o.swept <- struct{}{}:
		default:
		}
	}
}

func (o *recordingObserver) ObserveOperationalTable(table string, rows, bytes int64, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tables[table] = messaging.TableStats{Name: table, Rows: rows, Bytes: bytes, Oldest: oldest}
}

func (o *recordingObserver) sweepCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.sweeps[messaging.KindOutbox])
}

// The development mailbox keeps a week; each sweep is recorded for
// `usersd status` and reported with the tables' sizes.
func TestSweepPrunesTheMailboxAndReportsSizes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewService(t)
	for _, age := range []string{"8 days", "1 hour"} {
		if _, err := pool.Exec(ctx, `INSERT INTO dev_mailbox (id, workspace_id, invitation_id, attempt, to_address, subject, text_body, html_body, sent_at)
			VALUES ($1, $2, $3, 1, 'a@example.com', 's', 't', 'h', now() - $4::interval)`, uuid.New(), uuid.New(), uuid.New(), age); err != nil {
			t.Fatal(err)
		}
	}
	obs := newRecordingObserver()
	s := newSweeper(newReplica(t, pool), pool, messaging.SweeperOptions{Retention: messaging.DefaultRetention(), Observer: obs})
	rep := sweep(t, s)
	if rep.Pruned[messaging.KindDevMailbox] != 1 || rep.Total() != 1 {
		t.Errorf("pruned %v, want the one mailbox message older than a week", rep.Pruned)
	}
	box := obs.tables["dev_mailbox"]
	if box.Rows != 1 || box.Bytes <= 0 || box.Oldest < 59*time.Minute || box.Oldest > 2*time.Hour {
		t.Errorf("reported dev_mailbox %+v, want 1 row of about an hour, some bytes", box)
	}
	if len(obs.tables) != len(messaging.EmailTables()) {
		t.Errorf("reported %d tables, want the %d of the e-mails", len(obs.tables), len(messaging.EmailTables()))
	}
	sweep(t, s)
	last, err := messaging.LastSweeps(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var box2 *messaging.SweepRecord
	for i := range last {
		if last[i].Kind == messaging.KindDevMailbox {
			box2 = &last[i]
		}
	}
	if len(last) != 4 || box2 == nil || box2.LastPruned != 0 || box2.TotalPruned != 1 || box2.LastError != "" || time.Since(box2.LastRunAt) > time.Minute {
		t.Errorf("last sweeps %+v, want 4 kinds, the mailbox's last pruning none of 1 in all, just now", last)
	}
}

// Rows are settled from where the last sweep stopped, MaxChecks at a time;
// a row whose outcome is not recorded is never pruned.
func TestSettlingGoesOnWhereTheLastSweepStopped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewService(t)
	// A workspace that does not exist: no link of it works.
	ws := uuid.New()
	for i := range 3 {
		if _, err := pool.Exec(ctx, `INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id, recorded_at) VALUES ($1, $2, $3, now())`, uuid.New(), i+1, ws); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id) VALUES ($1, 1, $2)`, uuid.New(), ws); err != nil {
		t.Fatal(err)
	}
	s := newSweeper(newReplica(t, pool), pool, messaging.SweeperOptions{MaxChecks: 1, Batch: 1})
	for i := range 3 {
		rep := sweep(t, s)
		if rep.Settled != 1 || rep.Pruned[messaging.KindDeliveries] != 1 {
			t.Errorf("sweep %d: settled %d and pruned %d delivery rows, want 1 and 1", i+1, rep.Settled, rep.Pruned[messaging.KindDeliveries])
		}
	}
	for range 2 {
		sweep(t, s)
	}
	if n := count(t, pool, `SELECT count(*) FROM mail_deliveries`); n != 1 {
		t.Errorf("delivery rows after five sweeps: %d, want the unrecorded one", n)
	}
}

// One replica at a time sweeps; another takes over when it stops.
func TestOneReplicaSweepsAtATime(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewService(t)
	r := newReplica(t, pool)
	run := func(obs *recordingObserver) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = newSweeper(r, pool, messaging.SweeperOptions{Interval: 20 * time.Millisecond, Observer: obs}).Run(ctx)
		}()
		return func() { cancel(); <-done }
	}
	first, second := newRecordingObserver(), newRecordingObserver()
	stopFirst := run(first)
	<-first.swept
	stopSecond := run(second)
	defer stopSecond()
	for range 5 {
		select {
		case <-first.swept:
		case <-time.After(20 * time.Second):
			t.Fatal("the first sweeper stopped sweeping")
		}
	}
	if n := second.sweepCount(); n != 0 {
		t.Errorf("the second sweeper swept %d times while the first held the lock, want 0", n)
	}
	stopFirst()
	select {
	case <-second.swept:
	case <-time.After(20 * time.Second):
		t.Fatal("the second sweeper did not take over")
	}
}
