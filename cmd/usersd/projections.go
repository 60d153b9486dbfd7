package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

// allProjections lists every read model the service keeps.
func allProjections() []projections.ReadModel {
	return []projections.ReadModel{userlist.New(), memberships.New(), audit.New(), history.New()}
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

It runs as the tables' owner: USERSD_MIGRATE_DATABASE_URL when set (the
rebuilt tables get the live ones' privileges, so the service's role goes
on), else DATABASE_URL, which must then be the owner's.

The audit history is evidence: before its swap, the rebuilt chain is compared
with the live one, entry by entry. If they differ (events rewritten or removed
underneath, or live entries changed), the rebuild refuses to swap, names the
first differing entry of each workspace (seq, live hash, rebuilt hash) and
exits 1, leaving the live history as it is. With -accept-divergence it swaps
anyway, after recording an AuditDivergenceAccepted event in each workspace
that differs, which then appears in its audit history.

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)
  USERSD_MIGRATE_DATABASE_URL
                     the owner's URL of the same database
  ESDB_URL           EventStoreDB connection string, when the events live there`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseFlag(fs)
			acceptDivergence := fs.Bool("accept-divergence", false,
				"swap in a rebuilt audit history that differs from the live one, recording it in each workspace that differs")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 || args[0] != "rebuild" {
					return usageErrorf("want: usersd projections rebuild [NAME ...] [-accept-divergence]")
				}
				chosen, err := chooseProjections(args[1:])
				if err != nil {
					return err
				}
				// A rebuild creates tables and swaps them in: the owner's
				// work, never the service's role's.
				rt, err := openFrom(ctx, fs, e, needs{migrate: true, codec: true, owner: true})
				if err != nil {
					return err
				}
				defer rt.close()
				var accept func(context.Context, error) error
				if *acceptDivergence {
					accept = recordDivergence(e, rt.store, rt.codec)
				}
				for _, p := range chosen {
					err := rebuildOne(ctx, e, rt.pool, p, eventstore.Source{Store: rt.store, Codec: rt.codec}, accept)
					if errors.Is(err, projections.ErrDiverged) {
						return fmt.Errorf("rebuild %s refused, the live tables are as they were: %w "+
							"(to swap anyway, recording it in each of these workspaces: usersd projections rebuild %s -accept-divergence)", p.Name(), err, p.Name())
					}
					if err != nil {
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

// recordDivergence is -accept-divergence: for each workspace whose rebuilt
// audit differs from the live one, an AuditDivergenceAccepted event in the
// workspace's stream, before the swap; a divergence it cannot record (not
// the audit's, a workspace without a stream) refuses the swap.
func recordDivergence(e *env, store eventstore.Store, codec *eventstore.Codec) func(context.Context, error) error {
	// The application's handler, observed as every command is. The
	// rebuild makes no links: an ephemeral key serves.
	record := commands.NewApplication(commands.ProductionDeps(
		eventstore.NewWorkspaces(store, codec, 16), eventstore.NewAccounts(store, codec, 16), eventstore.NewLogins(store, codec), commands.EphemeralLinkSecrets(),
	), commands.DefaultInvitationPolicy(), commands.Instrumentation{Logger: e.Log}).Commands.AcceptAuditDivergence
	correlation := "usersd-rebuild-" + uuid.NewString()
	return func(ctx context.Context, diverged error) error {
		var de *audit.DivergenceError
		if !errors.As(diverged, &de) {
			return fmt.Errorf("cannot record this divergence, so not swapping: %w", diverged)
		}
		for _, d := range de.Divergences {
			_, err := record.Handle(ctx, commands.AcceptAuditDivergence{
				WorkspaceID: d.WorkspaceID, Seq: d.Seq, LiveHash: d.LiveHash, RebuiltHash: d.RebuiltHash,
				Meta: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: correlation},
			})
			if err != nil {
				return fmt.Errorf("record the accepted divergence of workspace %s, so not swapping: %w", d.WorkspaceID, err)
			}
			fmt.Fprintf(e.Stdout, "workspace %s: accepted the rebuilt audit from seq %d (live hash %s, rebuilt hash %s); recorded as AuditDivergenceAccepted\n",
				d.WorkspaceID, d.Seq, orNone(d.LiveHash), orNone(d.RebuiltHash))
		}
		return nil
	}
}

func orNone(hash string) string {
	if hash == "" {
		return "none"
	}
	return hash
}

func rebuildOne(ctx context.Context, e *env, pool *pgxpool.Pool, p projections.ReadModel, src projections.Source, accept func(context.Context, error) error) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.Stderr),
		progressbar.OptionSetDescription("rebuilding "+p.Name()), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetSpinnerChangeInterval(0)) // its goroutine races with Add and Describe (progressbar v3.19)
	last := 0
	res, err := projections.Rebuild(ctx, pool, p, src, projections.RebuildOptions{
		Logger:           e.Log,
		AcceptDivergence: accept,
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
