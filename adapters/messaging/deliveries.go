package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
)

// deliveries is the delivery log (mail_deliveries): one row per attempt
// whose e-mail left us or failed for good. The mailer reads it before
// sending, so a redelivered message sends nothing, and the recorder turns
// its rows into events.
type deliveries struct{ pool *pgxpool.Pool }

// doneOf answers, for each command, whether its attempt is in the log: one
// query for a composer round.
func (d deliveries) doneOf(ctx context.Context, cmds []commands.SendInvitationEmail) ([]bool, error) {
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

// note logs an attempt's outcome; failure is empty when it was sent. The
// first outcome logged stands.
func (d deliveries) note(ctx context.Context, c commands.SendInvitationEmail, failure string) error {
	var f *string
	if failure != "" {
		f = &failure
	}
	_, err := d.pool.Exec(ctx, `
		INSERT INTO mail_deliveries (invitation_id, attempt, workspace_id, failure) VALUES ($1, $2, $3, $4)
		ON CONFLICT (invitation_id, attempt) DO NOTHING`, c.InvitationID, c.Attempt, c.WorkspaceID, f)
	if err != nil {
		return fmt.Errorf("write the delivery log: %w", err)
	}
	return nil
}

// Recorder appends the delivery log's outcomes as InvitationEmailSent and
// InvitationEmailFailed events, a workspace's outcomes in one append, and
// marks them recorded. Rows are its only input, so outcomes logged before a
// crash are recorded after the restart; recording twice records nothing
// more (the workspace keeps an attempt's first outcome). The replica that
// mails runs it.
type Recorder struct {
	pool     *pgxpool.Pool
	record   commands.Handler[commands.RecordEmailOutcomes, domain.Position]
	log      *slog.Logger
	interval time.Duration
	poke     chan struct{}
}

// recordBatch bounds the outcomes taken at once; recordGap is the least
// time between two flushes that recorded something.
const (
	recordBatch = 2000
	recordGap   = 250 * time.Millisecond
)

// NewRecorder returns a recorder that looks at the log when poked and at
// least every interval (default 1 s).
func NewRecorder(pool *pgxpool.Pool, record commands.Handler[commands.RecordEmailOutcomes, domain.Position], log *slog.Logger, interval time.Duration) *Recorder {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{pool: pool, record: record, log: log, interval: interval, poke: make(chan struct{}, 1)}
}

// Poke asks for a look at the log soon.
func (r *Recorder) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run records until ctx ends.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		took := 0
		for {
			n, err := r.Flush(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("mail: record delivery outcomes", "err", err)
			}
			took += n
			if err != nil || n < recordBatch {
				break
			}
		}
		if took > 0 {
			// Let outcomes gather: each flush appends to the workspaces
			// and holds their aggregates meanwhile, which the mailer
			// reads for every e-mail. Recording a quarter of a second
			// later costs nothing; an append per e-mail would halve the
			// rate.
			if err := pause.For(ctx, recordGap); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.poke:
		case <-t.C:
		}
	}
}

type outcomeRow struct {
	ws, inv uuid.UUID
	attempt int
	failure *string
}

// Flush records the outcomes not yet recorded and answers how many it took.
func (r *Recorder) Flush(ctx context.Context) (int, error) {
	// No transaction around it all: one holding row locks (and so a
	// transaction id) across the appends would hide the outcome events
	// from every projection until it ends. Two recorders (a takeover)
	// taking the same rows record nothing twice.
	rows, err := r.pool.Query(ctx, `
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
		_, err := r.record.Handle(ctx, commands.RecordEmailOutcomes{
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
		_, err := r.pool.Exec(ctx, `
			UPDATE mail_deliveries d SET recorded_at = now()
			FROM unnest($1::uuid[], $2::int[]) AS k(invitation_id, attempt)
			WHERE d.invitation_id = k.invitation_id AND d.attempt = k.attempt`, invs, attempts)
		if err != nil {
			return 0, err
		}
	}
	return len(taken), errors.Join(errs...)
}
