package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
)

// Retention is how long each kind of operational row is kept once nothing
// needs it any more. The events and the audit entries are the history and
// are never pruned; these rows are derived or operational
// (docs/retention.md).
type Retention struct {
	// Poison keeps a poison-queue message this long after it was poisoned
	// (USERSD_POISON_RETENTION).
	Poison time.Duration
	// Deliveries keeps a delivery-log row this long after its attempt can
	// no longer be mailed: the invitation was accepted, revoked, replaced
	// by a resend or expired (USERSD_DELIVERY_RETENTION).
	Deliveries time.Duration
	// DevMailbox keeps a development-mailbox message this long after it
	// was sent (USERSD_DEV_MAILBOX_RETENTION).
	DevMailbox time.Duration
}

// DefaultRetention is 30 days of poison queue, a day of margin for the
// delivery log and a week of development mailbox.
func DefaultRetention() Retention {
	return Retention{Poison: 30 * 24 * time.Hour, Deliveries: 24 * time.Hour, DevMailbox: 7 * 24 * time.Hour}
}

// The kinds of rows the sweeper prunes: the labels of its metrics and the
// keys of retention_sweeps.
const (
	KindOutbox     = "outbox"
	KindPoison     = "poison"
	KindDeliveries = "deliveries"
	KindDevMailbox = "dev_mailbox"
)

// RetentionTask prunes one kind of operational row: the built-in ones
// (NewSweeper) and any a caller adds (SweeperOptions.Tasks, e.g. a delivery
// log of its own pruned with PruneOlderThan). Prune deletes in statements
// of at most batch rows, each its own short transaction, and answers how
// many rows it deleted; it must delete only what nothing needs any more,
// and may be interrupted between any two statements.
type RetentionTask struct {
	Kind   string
	Tables []OperationalTable
	Prune  func(ctx context.Context, pool *pgxpool.Pool, batch int) (int64, error)
}

// RetentionObserver receives what each sweep did (metrics.Metrics
// implements it): the rows each kind pruned, and the size of each
// operational table after the sweep.
type RetentionObserver interface {
	ObserveRetentionSweep(kind string, pruned int64, failed bool)
	ObserveOperationalTable(table string, rows, bytes int64, oldest time.Duration)
}

// SweeperOptions tune the sweeper; zero values take the defaults, but for
// Retention, whose zero durations prune rows as soon as nothing needs them
// (DefaultRetention has the defaults).
type SweeperOptions struct {
	Retention Retention
	// Interval is the time between sweeps (USERSD_RETENTION_INTERVAL,
	// default 1 min).
	Interval time.Duration
	// Batch bounds the rows of one statement (default 1,000), so that no
	// statement holds row locks for long.
	Batch int
	// MaxChecks bounds the delivery-log rows whose attempt one sweep asks
	// the workspace about (default 20,000); the next sweep goes on from
	// where this one stopped.
	MaxChecks int
	// Tasks are pruned after the built-in ones.
	Tasks    []RetentionTask
	Observer RetentionObserver
	Logger   *slog.Logger
}

// Sweeper prunes the operational tables: one replica at a time runs it (an
// advisory lock held on a connection of its own, like the expiry), every
// Interval. What it may delete, and why that never breaks the e-mails'
// de-duplication or an account's erasure, is in docs/retention.md; in
// short, in the order of a sweep:
//
//   - development mailbox: messages older than its retention;
//   - delivery log: a row is settled once its outcome is recorded and the
//     workspace says its attempt's link no longer works (the very check the
//     mailer makes before sending, so a redelivered message of that attempt
//     sends nothing without the row), and deleted Retention.Deliveries after;
//   - poison queue: a message older than its retention, whose invitation has
//     no delivery-log or mailbox row left, once its failure is recorded;
//   - outbox: a message every consumer group has acknowledged, whose
//     invitation has no delivery-log or mailbox row left (an account's
//     erasure finds those rows through the messages, purge.go).
//
// Correctness does not rest on the lock: two sweepers at once delete
// nothing that one would not.
type Sweeper struct {
	pool    *pgxpool.Pool
	compose commands.Handler[commands.ComposeInvitationEmails, []commands.ComposedInvitationEmail]
	record  commands.Handler[commands.RecordEmailOutcomes, domain.Position]
	opts    SweeperOptions
	log     *slog.Logger
	tasks   []RetentionTask
	// cursor is where the next check of delivery-log rows starts;
	// settled counts the rows the current sweep settled.
	cursor  deliveryKey
	settled int64
}

// NewSweeper returns the sweeper. compose is the mailer's check of a link
// (which attempts may still be mailed); record records the failure of a
// poisoned e-mail that has none recorded yet.
func NewSweeper(pool *pgxpool.Pool, compose commands.Handler[commands.ComposeInvitationEmails, []commands.ComposedInvitationEmail], record commands.Handler[commands.RecordEmailOutcomes, domain.Position], opts SweeperOptions) *Sweeper {
	if pool == nil || compose == nil || record == nil {
		panic("messaging: NewSweeper needs a pool and the compose and record handlers")
	}
	opts.Interval = positive.Or(opts.Interval, time.Minute)
	opts.Batch = positive.Or(opts.Batch, 1000)
	opts.MaxChecks = positive.Or(opts.MaxChecks, 20_000)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Sweeper{pool: pool, compose: compose, record: record, opts: opts, log: opts.Logger.With("component", "retention")}
	s.tasks = append([]RetentionTask{
		{Kind: KindDevMailbox, Tables: []OperationalTable{devMailboxTable},
			Prune: PruneOlderThan(devMailboxTable.Name, "id", devMailboxTable.TimeColumn, "", opts.Retention.DevMailbox)},
		{Kind: KindDeliveries, Tables: []OperationalTable{deliveriesTable}, Prune: s.pruneDeliveries},
		{Kind: KindPoison, Tables: []OperationalTable{poisonTable}, Prune: s.prunePoison},
		{Kind: KindOutbox, Tables: outboxTables(), Prune: s.pruneOutbox},
	}, opts.Tasks...)
	return s
}

// Tables answers every table the sweeper prunes, in the order of its tasks.
func (s *Sweeper) Tables() []OperationalTable { return TablesOf(s.tasks) }

// TablesOf answers the tables of tasks, in order.
func TablesOf(tasks []RetentionTask) []OperationalTable {
	var out []OperationalTable
	for _, t := range tasks {
		out = append(out, t.Tables...)
	}
	return out
}

// retentionLock names the advisory lock of the sweeper.
const retentionLock = "usersd retention sweeper"

// Run sweeps every Interval until ctx ends, standing by while another
// replica holds the lock.
func (s *Sweeper) Run(ctx context.Context) error {
	return leadLocked(ctx, s.log, "retention", s.pool, retentionLock, s.step)
}

// step sweeps once, while this replica holds the lock on conn, and answers
// the Interval to the next sweep.
func (s *Sweeper) step(ctx context.Context, conn *pgxpool.Conn) (time.Duration, error) {
	// The lock lives on conn: if conn is gone, so is the lock.
	if err := conn.Ping(ctx); err != nil {
		return 0, fmt.Errorf("the lock's connection: %w", err)
	}
	rep, err := s.Sweep(ctx)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		s.log.Warn("retention: sweep failed in part", "err", err)
	}
	if rep.Total() > 0 {
		s.log.Info("retention: pruned", "rows", rep.Pruned, "settled_deliveries", rep.Settled, "took", rep.Took.Round(time.Millisecond))
	}
	return s.opts.Interval, nil
}

// SweepReport is what one sweep did.
type SweepReport struct {
	// Pruned is the rows each kind deleted.
	Pruned map[string]int64
	// Settled is the delivery-log rows found no longer needed (deleted
	// Retention.Deliveries later).
	Settled int64
	// Tables are the operational tables' sizes after the sweep.
	Tables []TableStats
	Took   time.Duration
}

// Total is the rows the sweep deleted.
func (r SweepReport) Total() int64 {
	var n int64
	for _, v := range r.Pruned {
		n += v
	}
	return n
}

// Sweep runs every task once, records what each pruned (retention_sweeps,
// the observer) and measures the tables. It needs no lock (Run holds
// one), but never runs twice at once on one Sweeper; an error of one task
// does not stop the others.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	start := time.Now()
	rep := SweepReport{Pruned: map[string]int64{}}
	failed := map[string]error{}
	s.settled = 0
	for _, t := range s.tasks {
		n, err := t.Prune(ctx, s.pool, s.opts.Batch)
		rep.Pruned[t.Kind] += n
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			failed[t.Kind] = err
		}
	}
	rep.Settled = s.settled
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(failed)) {
		errs = append(errs, fmt.Errorf("%s: %w", k, failed[k]))
	}
	if err := recordSweep(ctx, s.pool, rep.Pruned, failed); err != nil {
		errs = append(errs, err)
	}
	tables, err := MeasureTables(ctx, s.pool, s.Tables())
	if err != nil {
		errs = append(errs, err)
	}
	rep.Tables, rep.Took = tables, time.Since(start)
	if o := s.opts.Observer; o != nil {
		for _, t := range s.tasks {
			o.ObserveRetentionSweep(t.Kind, rep.Pruned[t.Kind], failed[t.Kind] != nil)
		}
		for _, t := range tables {
			o.ObserveOperationalTable(t.Name, t.Rows, t.Bytes, t.Oldest)
		}
	}
	return rep, errors.Join(errs...)
}

// microseconds passes a duration to SQL, as `$n * interval '1 microsecond'`.
func microseconds(d time.Duration) int64 { return d.Microseconds() }

// PruneOlderThan is a task's Prune that deletes the rows of table whose
// timeColumn (a timestamptz) is older than keep, key by key (key is a
// column that identifies a row), batch rows per statement; where, when
// not empty, is a further SQL condition the rows must meet. table, key,
// timeColumn and where are SQL written in code, never input.
func PruneOlderThan(table, key, timeColumn, where string, keep time.Duration) func(context.Context, *pgxpool.Pool, int) (int64, error) {
	cond := ident(timeColumn) + ` < now() - $1 * interval '1 microsecond'`
	if where != "" {
		cond += " AND (" + where + ")"
	}
	sql := `DELETE FROM ` + ident(table) + ` WHERE ` + ident(key) + ` IN (SELECT ` + ident(key) + ` FROM ` + ident(table) + ` WHERE ` + cond + ` LIMIT $2)`
	return func(ctx context.Context, pool *pgxpool.Pool, batch int) (int64, error) {
		return deleteInBatches(ctx, pool, batch, sql, microseconds(keep), batch)
	}
}

// deleteInBatches runs sql (a DELETE of at most batch rows) until it
// deletes fewer than batch, and answers the rows deleted.
func deleteInBatches(ctx context.Context, pool *pgxpool.Pool, batch int, sql string, args ...any) (int64, error) {
	var total int64
	for {
		tag, err := pool.Exec(ctx, sql, args...)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
