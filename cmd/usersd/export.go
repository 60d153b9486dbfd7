package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/usersd/usersd/adapters/eventstore"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/feed"
)

func eventsCommand() *command {
	return &command{
		Name:     "events",
		Synopsis: "export [flags] | seal",
		Summary:  "export the event history as NDJSON (for analytics); seal events written in clear",
		Help: `
events export streams the stored events, in global order, to standard output
as NDJSON, one event a line in the shape of the event feed (GET /v1/events):
position, eventId, type, workspaceId, occurredAt, data and metadata. Personal
values are exported sealed, as stored: the file holds no address or name, and
an erasure reaches it too (the feed, served live, opens them). Progress goes
to standard error. -after <position> starts after that position (exclusive;
the last position of an earlier export resumes it), -types keeps only the
listed event types (comma-separated, e.g. UserInvited,RoleChanged), and
-from and -to (RFC 3339) keep only events that occurred in [from, to).

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
			after := fs.String("after", "", "start after this `position` (exclusive), as the API and the export write them")
			types := fs.String("types", "", "keep only these event `types` (comma-separated, e.g. UserInvited,RoleChanged)")
			return func(ctx context.Context, args []string) error {
				if len(args) == 1 && args[0] == "seal" {
					return sealEvents(ctx, fs, e)
				}
				if len(args) != 1 || args[0] != "export" {
					return usageErrorf("want: usersd events export [flags], or usersd events seal")
				}
				q, err := parseExportQuery(*from, *to, *after, *types)
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
				n, err := exportEvents(ctx, rt.store, e.Stdout, q, func(k int) { _ = bar.Add(k) })
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

// parseExportQuery reads the flags of events export.
func parseExportQuery(from, to, after, types string) (exportQuery, error) {
	var q exportQuery
	var err error
	if q.window, err = parseWindow(from, to); err != nil {
		return q, err
	}
	if after != "" {
		if q.after, err = domain.ParsePosition(after); err != nil {
			return q, usageErrorf("-after %q is not a position such as 1234-5 (as the API and the export write them)", after)
		}
	}
	if q.types, err = feed.ParseTypes(types); err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return q, usageErrorf("-types: %s", de.Message)
		}
		return q, usageErrorf("-types: %v", err)
	}
	return q, nil
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

// exportQuery is what usersd events export writes.
type exportQuery struct {
	window window
	after  domain.Position
	types  []string
}

// exportEvents writes the events after q.after of q.types (all if none)
// that occurred in q.window to out as lines of the event feed, up to the
// end of the history as it stands when the export reaches it. Personal
// values stay sealed, as stored. progress is told of each batch read,
// kept or not.
func exportEvents(ctx context.Context, store eventstore.Store, out io.Writer, q exportQuery, progress func(int)) (int, error) {
	buf := bufio.NewWriterSize(out, 64<<10)
	src := storedSource{store: store, window: q.window, progress: progress}
	res, err := feed.Copy(ctx, src, feed.Query{After: q.after, Filter: feed.Filter{Types: q.types}, BatchSize: 5000}, buf)
	return res.Events, err
}

// storedSource reads the store's events as stored (eventstore.DecodeStored:
// sealed, no key needed) and keeps those that occurred in window. Each
// batch keeps its checkpoint, so the end of the history is still found
// when its last events fall outside the window.
type storedSource struct {
	store    eventstore.Store
	window   window
	progress func(int)
}

func (s storedSource) Subscribe(ctx context.Context, from domain.Position, batchSize int, h func(context.Context, projections.Batch) error) error {
	return s.store.SubscribeToAll(ctx, from, eventstore.SubscribeOptions{BatchSize: batchSize}, func(ctx context.Context, b eventstore.Batch) error {
		kept := make([]domain.RecordedEvent, 0, len(b.Events))
		for _, raw := range b.Events {
			ev, err := eventstore.DecodeStored(raw)
			if err != nil {
				return err
			}
			if s.window.contains(occurredAt(ev, raw)) {
				kept = append(kept, ev)
			}
		}
		s.progress(len(b.Events))
		return h(ctx, projections.Batch{Events: kept, Checkpoint: b.Checkpoint, CaughtUp: b.CaughtUp})
	})
}

// occurredAt is when the event happened by its metadata, else when it was
// stored.
func occurredAt(ev domain.RecordedEvent, raw eventstore.RecordedEvent) time.Time {
	if at := ev.Metadata.OccurredAt; !at.IsZero() {
		return at.UTC()
	}
	return raw.CreatedAt.UTC()
}
