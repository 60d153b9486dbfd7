package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

// allProjections lists every read model the service keeps.
func allProjections() []projections.ReadModel {
	return []projections.ReadModel{userlist.New(), memberships.New(), audit.New()}
}

func projectionNames() []string {
	var names []string
	for _, p := range allProjections() {
		names = append(names, p.Name())
	}
	return names
}

func projectionsCommand() *command {
	return &command{
		Name:     "projections",
		Synopsis: "rebuild [NAME ...] [flags]",
		Summary:  "rebuild read models from the whole event history",
		Help: `
projections rebuild replays the whole event history into fresh tables and swaps
them in at the end, one projection after the other (all of them, or the ones
named: ` + strings.Join(projectionNames(), ", ") + `). A running service keeps
answering from the old tables until the swap; its projection runners carry on
from the rebuilt checkpoint. A progress bar shows the events applied, and a
final line the count and the rate.

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)
  ESDB_URL           EventStoreDB connection string, when the events live there`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 || args[0] != "rebuild" {
					return usageErrorf("want: usersd projections rebuild [NAME ...]")
				}
				chosen, err := chooseProjections(args[1:])
				if err != nil {
					return err
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				rt, err := open(ctx, e, db, needs{migrate: true, events: true})
				if err != nil {
					return err
				}
				defer rt.close()
				for _, p := range chosen {
					if err := rebuildOne(ctx, e, rt.pool, p, eventstore.Source{Store: rt.store}); err != nil {
						return fmt.Errorf("rebuild %s: %w", p.Name(), err)
					}
				}
				return nil
			}
		},
	}
}

func chooseProjections(names []string) ([]projections.ReadModel, error) {
	all := allProjections()
	if len(names) == 0 {
		return all, nil
	}
	var out []projections.ReadModel
	for _, n := range names {
		found := false
		for _, p := range all {
			if p.Name() == n {
				out, found = append(out, p), true
			}
		}
		if !found {
			return nil, usageErrorf("unknown projection %q: want one of %s", n, strings.Join(projectionNames(), ", "))
		}
	}
	return out, nil
}

func rebuildOne(ctx context.Context, e *env, pool *pgxpool.Pool, p projections.ReadModel, src projections.Source) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.Stderr),
		progressbar.OptionSetDescription("rebuilding "+p.Name()), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"), progressbar.OptionThrottle(100*time.Millisecond))
	last := 0
	res, err := projections.Rebuild(ctx, pool, p, src, projections.RebuildOptions{
		Logger: e.Log,
		Progress: func(applied int, _ domain.Position) {
			_ = bar.Add(applied - last)
			last = applied
		},
		Phase: func(ph projections.RebuildPhase) {
			bar.Describe("rebuilding " + p.Name() + ": " + string(ph))
		},
	})
	_ = bar.Finish()
	if err != nil {
		return err
	}
	rate := float64(res.Applied) / res.Duration.Seconds()
	indexes := ""
	if res.IndexDuration > 0 {
		indexes = fmt.Sprintf(", indexes built in %s", res.IndexDuration.Round(time.Millisecond))
	}
	fmt.Fprintf(e.Stdout, "\n%s: rebuilt from %d events in %s (%.0f events/s%s), now at position %s\n",
		p.Name(), res.Applied, res.Duration.Round(time.Millisecond), rate, indexes, res.Position)
	return nil
}
