package benchmarks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/projectionstest"
)

const inviteGoalRatio = 0.5 // invite rate / COPY rate, at 1,000 addresses

// BenchmarkInviteBatch invites 100 and 1,000 new addresses into a fresh
// workspace with commands.InviteUsers through the PostgreSQL event store,
// as the API does (1,000 addresses are two batches of 500, the most one
// batch may hold). Each new address reserves its account (one append to
// its own stream, up to 8 at once) before the batch's invitations are
// appended to the workspace stream in one append. The daily invitation
// limits are raised out of the way: they are policy, not work.
//
// Beside it, in the same iteration and on the same database, the very rows
// the invitation wrote (read back from the events table) go into a plain
// table of the same columns with a bigserial key:
//
//   - copy: one pgx CopyFrom in one transaction;
//   - batch: one pgx.Batch of single-row INSERTs, pipelined in one round
//     trip, in one transaction.
//
// ratio-copy is invite rate / COPY rate; the goal is ≥ 0.5 at 1,000.
func BenchmarkInviteBatch(b *testing.B) {
	ctx := context.Background()
	_, url := pgtest.New(b)
	pool := projectionstest.Pool(b, url, postgres.DefaultMaxConns) // as usersd serve runs
	projectionstest.CreateFloorTable(b, pool, "floor_events")
	store := pgstore.New(pool, pgstore.WithLogger(quietLogger()))
	b.Cleanup(store.Close)
	deps := eventstoretest.DepsWithCaches(store, testCodec, commands.EphemeralLinkSecrets(), eventstoretest.ServeCaches)
	accounts := &timedAccounts{inner: deps.Accounts}
	deps.Accounts = accounts
	policy := commands.DefaultInvitationPolicy()
	policy.Limits = domain.InviteLimits{PerWorkspace: 1 << 30, PerInviter: 1 << 30}
	env := &inviteEnv{
		pool:     pool,
		accounts: accounts,
		app:      commands.NewApplication(deps, policy, commands.Instrumentation{}).Commands,
	}
	env.round(b, ctx, 10) // connections, prepared statements, caches
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("addresses=%d", n), func(b *testing.B) {
			var inv, cp, batch, reserve time.Duration
			var rows int
			b.ResetTimer()
			for range b.N {
				r := env.round(b, ctx, n)
				inv, cp, batch, reserve, rows = inv+r.invite, cp+r.copy, batch+r.batch, reserve+r.reserve, r.rows
			}
			b.StopTimer()
			total := float64(n * b.N)
			b.ReportMetric(total/inv.Seconds(), "invited/s")
			b.ReportMetric(total/cp.Seconds(), "copy-invited/s")
			b.ReportMetric(total/batch.Seconds(), "batch-invited/s")
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(reserve.Seconds()/inv.Seconds(), "accounts-share")
			b.ReportMetric(cp.Seconds()/inv.Seconds(), "ratio-copy")
			b.ReportMetric(batch.Seconds()/inv.Seconds(), "ratio-batch")
			summary(b, "invite %d new addresses: %.0f addresses/s (%d events; %.0f%% of the time reserving accounts); COPY of the same rows %.0f/s, pipelined batch %.0f/s; invite/COPY = %.2f (goal ≥ %.1f at 1000: %s)",
				n, total/inv.Seconds(), rows, 100*reserve.Seconds()/inv.Seconds(), total/cp.Seconds(), total/batch.Seconds(), cp.Seconds()/inv.Seconds(),
				inviteGoalRatio, verdict(cp.Seconds()/inv.Seconds() >= inviteGoalRatio))
		})
	}
}

type inviteEnv struct {
	pool     *pgxpool.Pool
	accounts *timedAccounts
	app      commands.Commands
	rounds   int
}

// timedAccounts adds up the time spent reserving accounts, to split an
// invitation's time between its reservations and the rest.
type timedAccounts struct {
	inner commands.Accounts
	spent time.Duration
}

func (a *timedAccounts) Resolve(ctx context.Context, emails []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error) {
	start := time.Now()
	defer func() { a.spent += time.Since(start) }()
	return a.inner.Resolve(ctx, emails, newID, meta)
}

// inviteRound is what one round measured.
type inviteRound struct {
	invite, copy, batch, reserve time.Duration
	rows                         int
}

// round creates a workspace (not timed), invites n new addresses into it,
// then writes the rows the invitation wrote with COPY and with a pipelined
// batch.
func (env *inviteEnv) round(b *testing.B, ctx context.Context, n int) inviteRound {
	b.StopTimer()
	env.rounds++
	system := commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "bench-invite"}
	ws, err := env.app.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
		Name: fmt.Sprintf("Invite workspace %d", env.rounds), OwnerEmail: fmt.Sprintf("owner.%d@invite.example.com", env.rounds),
		OwnerName: "Owner", Meta: system,
	})
	if err != nil {
		b.Fatal(err)
	}
	var before int64
	if err := env.pool.QueryRow(ctx, "SELECT coalesce(max(position), 0) FROM events").Scan(&before); err != nil {
		b.Fatal(err)
	}
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("invitee.%d.%d@invite.example.com", env.rounds, i)
	}
	owner := commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}, CorrelationID: "bench-invite"}

	var r inviteRound
	spent := env.accounts.spent
	b.StartTimer()
	start := time.Now()
	invited := 0
	for lo := 0; lo < n; lo += domain.MaxBatch {
		res, err := env.app.InviteUsers.Handle(ctx, commands.InviteUsers{
			WorkspaceID: ws.WorkspaceID, Emails: emails[lo:min(n, lo+domain.MaxBatch)], Role: string(domain.RoleEditor), Meta: owner,
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range res.Results {
			if x.Outcome == domain.OutcomeInvited {
				invited++
			}
		}
	}
	r.invite = time.Since(start)
	b.StopTimer()
	r.reserve = env.accounts.spent - spent
	if invited != n {
		b.Fatalf("invited %d addresses, want %d", invited, n)
	}

	rows, err := env.pool.Query(ctx, `SELECT stream_id, revision, type, data::text, metadata::text
		FROM events WHERE position > $1 ORDER BY position`, before)
	if err != nil {
		b.Fatal(err)
	}
	written, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]any, error) {
		var stream, typ, data string
		var meta *string
		var rev int64
		err := row.Scan(&stream, &rev, &typ, &data, &meta)
		return []any{uuid.Must(uuid.NewV7()), stream, rev, typ, data, meta}, err
	})
	if err != nil {
		b.Fatal(err)
	}
	r.rows = len(written)
	cols := []string{"event_id", "stream_id", "revision", "type", "data", "metadata"}

	start = time.Now()
	err = pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"floor_events"}, cols, pgx.CopyFromRows(written))
		return err
	})
	r.copy = time.Since(start)
	if err != nil {
		b.Fatalf("copy: %v", err)
	}

	start = time.Now()
	err = pgx.BeginFunc(ctx, env.pool, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for _, w := range written {
			batch.Queue(`INSERT INTO floor_events (event_id, stream_id, revision, type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6)`, w...)
		}
		return tx.SendBatch(ctx, batch).Close()
	})
	r.batch = time.Since(start)
	if err != nil {
		b.Fatalf("batch: %v", err)
	}
	b.StartTimer()
	return r
}
