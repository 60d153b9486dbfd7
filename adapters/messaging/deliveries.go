package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
)

// deliveryLog owns what became of each attempt's e-mail, all of it: the
// rows of mail_deliveries (one per attempt whose e-mail left us or failed
// for good; read before sending, so that a redelivered message sends
// nothing, written after), the attempts handed to the server whose row is
// not written yet (in memory), and the recording of the rows as
// InvitationEmailSent and InvitationEmailFailed events. The replica that
// mails opens one for as long as it mails.
//
// The rows are its only input for recording, so outcomes logged before a
// crash are recorded after the restart; recording twice records nothing
// more (the workspace keeps an attempt's first outcome).
type deliveryLog struct {
	// pool reads the log and marks rows recorded; writes writes the rows,
	// on connections of its own (deliveryLogPool).
	pool, writes *pgxpool.Pool
	record       commands.Handler[commands.RecordEmailOutcomes, domain.Position]
	logger       *slog.Logger
	poke         chan struct{}
	// handed holds the attempts this process handed to the server whose
	// row is not written yet, so that a retry of the handler (the row's
	// write failed) does not send them again.
	handed sync.Map // attempt -> struct{}
}

// attempt keys one e-mail.
type attempt struct {
	invitation uuid.UUID
	n          int
}

// noteTimeout bounds how long the row of an e-mail already handed to the
// server is retried, past a stop or a database hiccup.
const noteTimeout = 30 * time.Second

// recordBatch bounds the outcomes taken at once; recordGap is the least
// time between two flushes that recorded something; recordInterval is how
// often the log is looked at when nothing pokes it.
//
// A round costs a transaction per workspace it records in (the append)
// and one more (the mark), however many outcomes it takes: at 250 ms the
// outcomes of 16 busy workspaces cost 0.39 transactions per invitation
// (docs/per-invitation.md); a second gathers four times as many per
// append. An outcome shown a second after its e-mail left weakens
// nothing: the delivery log, not the event, decides whether to send.
const (
	recordBatch    = 2000
	recordGap      = time.Second
	recordInterval = time.Second
)

// openDeliveryLog opens the log's write pool; close closes it.
func openDeliveryLog(ctx context.Context, pool *pgxpool.Pool, record commands.Handler[commands.RecordEmailOutcomes, domain.Position], logger *slog.Logger) (*deliveryLog, error) {
	writes, err := deliveryLogPool(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &deliveryLog{pool: pool, writes: writes, record: record, logger: logger, poke: make(chan struct{}, 1)}, nil
}

func (d *deliveryLog) close() { d.writes.Close() }

// deliveryLogPool connects for the delivery log's rows with asynchronous
// commit: waiting for a WAL flush per e-mail would cost more than the
// e-mail. A row is durable at the latest when the subscriber acknowledges
// the message, a synchronous commit that flushes the WAL before it; only a
// crash of PostgreSQL itself in between loses rows, and then their
// messages, unacknowledged, are delivered again (docs/email.md). The rows
// have the pool to themselves: a row written after the server took an
// e-mail (the crash window) never waits for a connection behind a read.
func deliveryLogPool(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Pool, error) {
	cfg := pool.Config().Copy()
	// One row at a time per partition, on connections made in advance: a
	// connect is no part of the window either.
	cfg.MaxConns, cfg.MinConns = Partitions, Partitions
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.ConnConfig.RuntimeParams["application_name"] = "usersd mail delivery log"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for the delivery log: %w", err)
	}
	return p, nil
}

// done answers, for each command, whether its attempt is in the log: one
// query for a composer round. An attempt handed to the server whose row is
// missing is not done: wasSent tells it.
func (d *deliveryLog) done(ctx context.Context, cmds []commands.SendInvitationEmail) ([]bool, error) {
	invs := make([]uuid.UUID, len(cmds))
	attempts := make([]int32, len(cmds))
	for i, c := range cmds {
		invs[i], attempts[i] = c.InvitationID, int32(c.Attempt)
	}
	rows, err := d.pool.Query(ctx, `
		SELECT k.i FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS k(invitation_id, attempt, i)
		JOIN mail_deliveries d ON d.invitation_id = k.invitation_id AND d.attempt = k.attempt`, invs, attempts)
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read the delivery log: %w", err)
	}
	out := make([]bool, len(cmds))
	for _, i := range found {
		out[i-1] = true
	}
	return out, nil
}

// wasSent answers whether this process handed the attempt to the server
// already and only its row is missing.
func (d *deliveryLog) wasSent(c commands.SendInvitationEmail) bool {
	_, ok := d.handed.Load(attempt{c.InvitationID, c.Attempt})
	return ok
}

// sent logs an attempt as sent: it remembers the attempt as handed to the
// server until its row is written, and retries the row for up to
// noteTimeout even after ctx ends: the router stopping (a deploy) while a
// server answers its 250 must not leave the e-mail to be sent again.
func (d *deliveryLog) sent(ctx context.Context, c commands.SendInvitationEmail) error {
	key := attempt{c.InvitationID, c.Attempt}
	d.handed.Store(key, struct{}{})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	for {
		err := d.note(ctx, c, "")
		if err == nil {
			d.handed.Delete(key)
			d.wake()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// failed logs an attempt as failed for good, also when the stop came while
// the server refused it.
func (d *deliveryLog) failed(ctx context.Context, c commands.SendInvitationEmail, reason string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	if err := d.note(ctx, c, reason); err != nil {
		return err
	}
	d.wake()
	d.logger.Warn("mail: invitation e-mail failed for good", "invitation", c.InvitationID, "attempt", c.Attempt, "reason", reason)
	return nil
}

// note writes an attempt's row; failure is empty when it was sent. The
// first outcome logged stands.
func (d *deliveryLog) note(ctx context.Context, c commands.SendInvitationEmail, failure string) error {
	var f *string
	if failure != "" {
		f = &failure
	}
	_, err := d.writes.Exec(ctx, `
		INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id, failure) VALUES ($1, $2, $3, $4)
		ON CONFLICT (invitation_id, attempt) DO NOTHING`, c.InvitationID, c.Attempt, c.WorkspaceID, f)
	if err != nil {
		return fmt.Errorf("write the delivery log: %w", err)
	}
	return nil
}

// wake asks the recording loop for a look at the log soon.
func (d *deliveryLog) wake() {
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// recordUntil records the logged outcomes until ctx ends: when woken, and
// at least every recordInterval.
func (d *deliveryLog) recordUntil(ctx context.Context) {
	t := time.NewTicker(recordInterval)
	defer t.Stop()
	for {
		took := 0
		for {
			n, err := d.record1(ctx)
			if err != nil && ctx.Err() == nil {
				d.logger.Warn("mail: record delivery outcomes", "err", err)
			}
			took += n
			if err != nil || n < recordBatch {
				break
			}
		}
		if took > 0 {
			// Let outcomes gather: each round appends to the workspaces
			// and holds their aggregates meanwhile, which the mailer
			// reads for every e-mail, and commits once per workspace.
			// Recording a second later costs nothing; an append per
			// e-mail would halve the rate.
			if pause.For(ctx, recordGap) != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.poke:
		case <-t.C:
		}
	}
}

type outcomeRow struct {
	ws, inv uuid.UUID
	attempt int
	failure *string
}

// record1 records up to recordBatch outcomes not yet recorded, one
// RecordEmailOutcomes per workspace, and answers how many it took.
func (d *deliveryLog) record1(ctx context.Context) (int, error) {
	// No transaction around it all: one holding row locks (and so a
	// transaction id) across the appends would hide the outcome events
	// from every projection until it ends. Two replicas (a takeover)
	// taking the same rows record nothing twice.
	rows, err := d.pool.Query(ctx, `
		SELECT workspace_id, invitation_id, attempt, failure FROM mail_deliveries
		WHERE recorded_at IS NULL ORDER BY delivered_at LIMIT $1`, recordBatch)
	if err != nil {
		return 0, err
	}
	taken, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outcomeRow, error) {
		var o outcomeRow
		return o, row.Scan(&o.ws, &o.inv, &o.attempt, &o.failure)
	})
	if err != nil || len(taken) == 0 {
		return 0, err
	}
	byWS := map[uuid.UUID][]commands.EmailOutcome{}
	var order []uuid.UUID
	for _, o := range taken {
		if _, ok := byWS[o.ws]; !ok {
			order = append(order, o.ws)
		}
		out := commands.EmailOutcome{InvitationID: o.inv, Attempt: o.attempt}
		if o.failure != nil {
			out.Failure = *o.failure
		}
		byWS[o.ws] = append(byWS[o.ws], out)
	}
	var invs []uuid.UUID
	var attempts []int32
	var errs []error
	for _, ws := range order {
		_, err := d.record.Handle(ctx, commands.RecordEmailOutcomes{
			WorkspaceID: ws, Outcomes: byWS[ws], Meta: commands.Meta{CorrelationID: "usersd-mailer"},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("workspace %s: %w", ws, err))
			continue
		}
		for _, o := range byWS[ws] {
			invs, attempts = append(invs, o.InvitationID), append(attempts, int32(o.Attempt))
		}
	}
	if len(invs) > 0 {
		_, err := d.pool.Exec(ctx, `
			UPDATE mail_deliveries d SET recorded_at = now()
			FROM unnest($1::uuid[], $2::int[]) AS k(invitation_id, attempt)
			WHERE d.invitation_id = k.invitation_id AND d.attempt = k.attempt`, invs, attempts)
		if err != nil {
			return 0, err
		}
	}
	return len(taken), errors.Join(errs...)
}
