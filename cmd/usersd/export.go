package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/domain"
)

func eventsCommand() *command {
	return &command{
		Name:     "events",
		Synopsis: "export [flags] | seal",
		Summary:  "export the event history as NDJSON (for analytics); seal events written in clear",
		Help: `
events export streams every stored event, in global order, to standard output
as NDJSON: one JSON object per line with position, streamId, revision, eventId,
type, occurredAt, data and metadata (both exactly as stored). Progress goes to
standard error. -from and -to (RFC 3339) keep only events that occurred in
[from, to). Personal values are exported sealed, as stored.

events seal rewrites, in place, every event written before personal values
were sealed, sealing them (a value of a person erased since is removed). It
runs on the PostgreSQL event store only, as the events' owner
(USERSD_MIGRATE_DATABASE_URL, else DATABASE_URL), in the maintenance
procedure; run "usersd projections rebuild audit -accept-divergence" after
it (docs/erasure.md, "Events written before sealing").

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)
  ESDB_URL           EventStoreDB connection string, when the events live there`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseFlag(fs)
			from := fs.String("from", "", "keep events that occurred at or after this `time` (RFC 3339)")
			to := fs.String("to", "", "keep events that occurred before this `time` (RFC 3339)")
			return func(ctx context.Context, args []string) error {
				if len(args) == 1 && args[0] == "seal" {
					return sealEvents(ctx, fs, e)
				}
				if len(args) != 1 || args[0] != "export" {
					return usageErrorf("want: usersd events export [flags], or usersd events seal")
				}
				window, err := parseWindow(*from, *to)
				if err != nil {
					return err
				}
				rt, err := openFrom(ctx, fs, e, needs{events: true})
				if err != nil {
					return err
				}
				defer rt.close()
				bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.Stderr),
					progressbar.OptionSetDescription("exporting events"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
					progressbar.OptionSetSpinnerChangeInterval(0)) // its goroutine races with Add (progressbar v3.19)
				n, err := exportEvents(ctx, rt.store, e.Stdout, window, func(k int) { _ = bar.Add(k) })
				_ = bar.Finish()
				fmt.Fprintf(e.Stderr, "\nexported %d events\n", n)
				return err
			}
		},
	}
}

// sealEvents is usersd events seal.
func sealEvents(ctx context.Context, fs *flag.FlagSet, e *env) error {
	if esdbURLSetting.get(e.Getenv) != "" {
		return usageErrorf("events seal rewrites the PostgreSQL event store only; %s is set (EventStoreDB events cannot be rewritten in place: see docs/erasure.md)", envESDBURL)
	}
	rt, err := openFrom(ctx, fs, e, needs{migrate: true, codec: true, owner: true})
	if err != nil {
		return err
	}
	defer rt.close()
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.Stderr),
		progressbar.OptionSetDescription("sealing events"), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"), progressbar.OptionSetSpinnerChangeInterval(0))
	last := 0
	read, rewritten, err := pgstore.Reseal(ctx, rt.pool, rt.codec, func(n, _ int) {
		_ = bar.Add(n - last)
		last = n
	})
	_ = bar.Finish()
	fmt.Fprintf(e.Stdout, "\nread %d events, sealed %d written in clear\n", read, rewritten)
	if err == nil && rewritten > 0 {
		fmt.Fprintln(e.Stdout, "the audit history no longer matches these events: run usersd projections rebuild audit -accept-divergence")
	}
	return err
}

// window is a half-open time range; zero ends are open.
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool {
	return (w.from.IsZero() || !t.Before(w.from)) && (w.to.IsZero() || t.Before(w.to))
}

func parseWindow(from, to string) (window, error) {
	var w window
	var err error
	if from != "" {
		if w.from, err = time.Parse(time.RFC3339Nano, from); err != nil {
			return w, usageErrorf("-from %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", from)
		}
	}
	if to != "" {
		if w.to, err = time.Parse(time.RFC3339Nano, to); err != nil {
			return w, usageErrorf("-to %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", to)
		}
	}
	if !w.from.IsZero() && !w.to.IsZero() && !w.from.Before(w.to) {
		return w, usageErrorf("-from must be before -to")
	}
	return w, nil
}

// exportedEvent is one NDJSON line: the stored event, data and metadata as
// they are, so that analytics sees exactly what the store holds.
type exportedEvent struct {
	Position   string          `json:"position"`
	StreamID   string          `json:"streamId"`
	Revision   uint64          `json:"revision"`
	EventID    string          `json:"eventId"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

var errExported = errors.New("export reached the end of the history")

// exportEvents writes every event in w's window to out, up to the end of the
// history as it stands when the export reaches it.
func exportEvents(ctx context.Context, store eventstore.Store, out io.Writer, w window, progress func(int)) (int, error) {
	buf := bufio.NewWriterSize(out, 64<<10)
	enc := json.NewEncoder(buf)
	n := 0
	err := store.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 5000}, func(_ context.Context, b eventstore.Batch) error {
		for _, ev := range b.Events {
			at := occurredAt(ev)
			if !w.contains(at) {
				continue
			}
			line := exportedEvent{
				Position: ev.Position.String(), StreamID: ev.StreamID, Revision: ev.Revision,
				EventID: ev.ID.String(), Type: ev.Type, OccurredAt: at, Data: ev.Data, Metadata: ev.Metadata,
			}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			n++
		}
		progress(len(b.Events))
		if b.CaughtUp {
			return errExported
		}
		return nil
	})
	if errors.Is(err, errExported) {
		err = nil
	}
	if ferr := buf.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write: %w", ferr)
	}
	return n, err
}

// occurredAt is when the event happened by its metadata, else when it was
// stored.
func occurredAt(ev eventstore.RecordedEvent) time.Time {
	var m struct {
		OccurredAt time.Time `json:"occurredAt"`
	}
	if len(ev.Metadata) > 0 && json.Unmarshal(ev.Metadata, &m) == nil && !m.OccurredAt.IsZero() {
		return m.OccurredAt.UTC()
	}
	return ev.CreatedAt.UTC()
}
