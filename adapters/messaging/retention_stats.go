package messaging

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OperationalTable is a table the sweeper prunes, whose size it reports.
type OperationalTable struct {
	Name string
	// TimeColumn dates a row: the oldest row's age is measured by it.
	TimeColumn string
	// Local is true when TimeColumn is a timestamp without time zone
	// written in the server's time zone (watermill-sql's created_at).
	Local bool
}

// queueTable is the table of a watermill-sql topic.
func queueTable(topic string) OperationalTable {
	return OperationalTable{Name: "watermill_" + topic, TimeColumn: "created_at", Local: true}
}

// outboxTables are the outbox's partitions.
func outboxTables() []OperationalTable {
	out := make([]OperationalTable, Partitions)
	for p := range out {
		out[p] = queueTable(PartitionTopic(p))
	}
	return out
}

// The e-mail pipeline's other operational tables.
var (
	devMailboxTable = OperationalTable{Name: "dev_mailbox", TimeColumn: "sent_at"}
	deliveriesTable = OperationalTable{Name: "mail_deliveries", TimeColumn: "delivered_at"}
	poisonTable     = queueTable(TopicInvitationEmailsPoison)
)

// EmailTables are the e-mail pipeline's operational tables, in the order
// the sweeper prunes them.
func EmailTables() []OperationalTable {
	return append([]OperationalTable{devMailboxTable, deliveriesTable, poisonTable}, outboxTables()...)
}

// TableStats is an operational table's size.
type TableStats struct {
	Name string
	// Rows is exact (a count); Bytes is the table's with its indexes and
	// TOAST (pg_total_relation_size).
	Rows, Bytes int64
	// Oldest is the age of the oldest row, zero when there is none.
	Oldest time.Duration
}

// MeasureTables counts each table's rows and measures its size and the age
// of its oldest row: one scan of each table.
func MeasureTables(ctx context.Context, pool *pgxpool.Pool, tables []OperationalTable) ([]TableStats, error) {
	b := &pgx.Batch{}
	for _, t := range tables {
		now := "now()"
		if t.Local {
			now = "localtimestamp"
		}
		name := ident(t.Name)
		b.Queue(`SELECT count(*), coalesce(extract(epoch FROM ` + now + ` - min(` + ident(t.TimeColumn) + `)), 0)::float8,
			pg_total_relation_size('` + name + `'::regclass) FROM ` + name)
	}
	res := pool.SendBatch(ctx, b)
	defer res.Close()
	out := make([]TableStats, len(tables))
	for i, t := range tables {
		var age float64
		out[i].Name = t.Name
		if err := res.QueryRow().Scan(&out[i].Rows, &age, &out[i].Bytes); err != nil {
			return nil, fmt.Errorf("measure %s: %w", t.Name, err)
		}
		out[i].Oldest = max(0, time.Duration(age*float64(time.Second)))
	}
	return out, res.Close()
}

// recordSweep keeps what a sweep pruned, per kind, in retention_sweeps.
func recordSweep(ctx context.Context, pool *pgxpool.Pool, pruned map[string]int64, failed map[string]error) error {
	b := &pgx.Batch{}
	for _, kind := range slices.Sorted(maps.Keys(pruned)) {
		var msg *string
		if err := failed[kind]; err != nil {
			s := err.Error()
			msg = &s
		}
		b.Queue(`INSERT INTO retention_sweeps (kind, last_run_at, last_pruned, total_pruned, last_error) VALUES ($1, now(), $2, $2, $3)
			ON CONFLICT (kind) DO UPDATE SET last_run_at = now(), last_pruned = $2,
				total_pruned = retention_sweeps.total_pruned + $2, last_error = $3`, kind, pruned[kind], msg)
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record the sweep: %w", err)
	}
	return nil
}

// SweepRecord is what the last sweep did for one kind of row.
type SweepRecord struct {
	Kind                    string
	LastRunAt               time.Time
	LastPruned, TotalPruned int64
	// LastError is why the last sweep of this kind failed, empty if it
	// did not.
	LastError string
}

// LastSweeps answers the last sweep of each kind, by kind.
func LastSweeps(ctx context.Context, pool *pgxpool.Pool) ([]SweepRecord, error) {
	rows, err := pool.Query(ctx, `SELECT kind, last_run_at, last_pruned, total_pruned, coalesce(last_error, '') FROM retention_sweeps ORDER BY kind`)
	if err != nil {
		return nil, fmt.Errorf("read the last sweeps: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SweepRecord, error) {
		var s SweepRecord
		return s, r.Scan(&s.Kind, &s.LastRunAt, &s.LastPruned, &s.TotalPruned, &s.LastError)
	})
	if err != nil {
		return nil, fmt.Errorf("read the last sweeps: %w", err)
	}
	return out, nil
}
