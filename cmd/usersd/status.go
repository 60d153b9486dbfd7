package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/usersd/usersd/adapters/messaging"
)

func statusCommand() *command {
	return &command{
		Name:     "status",
		Synopsis: "[flags]",
		Summary:  "print the operational tables' sizes and what the retention sweeper last pruned",
		Help: `
Prints, for operators, each operational table that the retention sweeper of
usersd serve prunes (the outbox's partitions, the poison queue, the delivery
log, the development mailbox): its rows, its size with indexes and the age
of its oldest row; then what the last sweep pruned of each kind of row, when,
and how much in all. The events and the audit entries are the history and
are never pruned. The same figures are on /metrics
(usersd_operational_table_*, usersd_retention_*); docs/retention.md says what
is kept how long.

It counts every row: on tables of millions of rows it takes seconds.

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)
  USERSD_LOG_LEVEL   debug, info, warn or error (default info)`,
		Setup: onDatabase("status", needs{pool: true}, func(ctx context.Context, e *env, rt *opened) error {
			tables, err := messaging.MeasureTables(ctx, rt.pool, operationalTables())
			if err != nil {
				return fmt.Errorf("%w (has usersd migrate run?)", err)
			}
			sweeps, err := messaging.LastSweeps(ctx, rt.pool)
			if err != nil {
				return fmt.Errorf("%w (has usersd migrate run?)", err)
			}
			return printStatus(e.Stdout, tables, sweeps, time.Now())
		}),
	}
}

// printStatus writes the tables' sizes and the last sweeps as two tables.
func printStatus(w io.Writer, tables []messaging.TableStats, sweeps []messaging.SweepRecord, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "Operational tables:")
	fmt.Fprintln(tw, "  table\trows\tsize\toldest row")
	for _, t := range tables {
		oldest := "-"
		if t.Rows > 0 {
			oldest = t.Oldest.Round(time.Second).String()
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", t.Name, t.Rows, humanBytes(t.Bytes), oldest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nRetention sweeps:")
	if len(sweeps) == 0 {
		_, err := fmt.Fprintln(w, "  none recorded: no usersd serve has swept this database yet")
		return err
	}
	fmt.Fprintln(tw, "  kind\tlast sweep\tago\tpruned\tin all")
	for _, s := range sweeps {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", s.Kind, s.LastRunAt.UTC().Format(time.RFC3339), now.Sub(s.LastRunAt).Round(time.Second), s.LastPruned, s.TotalPruned)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range sweeps {
		if s.LastError != "" {
			fmt.Fprintf(w, "  the last sweep of %s failed: %s\n", s.Kind, s.LastError)
		}
	}
	return nil
}

// humanBytes is n in bytes, kB, MB or GB (powers of 1,024).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "kB"
	for _, s := range []string{"MB", "GB", "TB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
