package benchmarks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/projectionstest"
)

const (
	eraseGoal        = time.Second // per deletion, at 100 workspaces
	eraseGoalAt      = 100
	eraseSeedWorkers = 8
)

// BenchmarkDeleteAccount times commands.DeleteAccount end to end, as
// `usersd serve` wires it: the PostgreSQL event store, the PostgreSQL key
// store (every event sealed under its person's key), the person directory
// over the read models, with the three projection runners and a waiter
// running beside it. Each iteration deletes a fresh person present in
// every one of the sub-benchmark's workspaces: a member (invited and
// accepted) in the even ones, a pending invitation in the odd ones. The
// setup (the invitations, the acceptances, and the wait until the user
// list and the accounts read model show them, so the directory finds every
// workspace) is outside the timer; the timed part is Handle alone: the
// directory's look-up, the last-Admin check of every workspace, a removal
// or revocation appended to each, AccountDeleted and the key's
// destruction. After each iteration (untimed) the key is erased and, once
// the read models catch up, the directory shows the person deleted and in
// no workspace; anything else fails the benchmark.
func BenchmarkDeleteAccount(b *testing.B) {
	for _, n := range []int{10, eraseGoalAt} {
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) { benchDeleteAccount(b, n) })
	}
}

type eraseEnv struct {
	app     commands.Commands
	secrets commands.LinkSecrets
	keys    *keystore.Keyring
	people  postgres.PersonDirectory
	waiter  *projections.Waiter
	// workspaces and their owners (each the workspace's one Admin).
	workspaces, owners []uuid.UUID
	seeded             int
}

func benchDeleteAccount(b *testing.B, n int) {
	ctx := context.Background()
	env := startErase(b, ctx, n)
	var lat latencies
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		user := env.seedPerson(b, ctx)
		b.StartTimer()
		start := time.Now()
		res, err := env.app.DeleteAccount.Handle(ctx, commands.DeleteAccount{
			UserID: user, Meta: commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "bench-erase"},
		})
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("delete account: %v", err)
		}
		lat = append(lat, d)
		env.checkErased(b, ctx, user, res)
		b.StartTimer()
	}
	b.StopTimer()
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	mean := total / time.Duration(len(lat))
	p99 := lat.Percentile(99)
	b.ReportMetric(mean.Seconds(), "s/deletion")
	b.ReportMetric(p99.Seconds(), "p99-s")
	b.ReportMetric(float64(n), "workspaces")
	goal := "n/a below 100 workspaces"
	if n >= eraseGoalAt {
		goal = verdict(mean < eraseGoal)
	}
	summary(b, "delete an account present in %d workspaces (%d member, %d invited): %.3f s per deletion, p99 %.3f s over %d (goal < %v at %d: %s)",
		n, (n+1)/2, n/2, mean.Seconds(), p99.Seconds(), len(lat), eraseGoal, eraseGoalAt, goal)
}

// startErase wires the pieces as cmd/usersd/serve.go does, on a fresh
// database, and creates n workspaces, each with its owner as only Admin.
func startErase(b *testing.B, ctx context.Context, n int) *eraseEnv {
	_, url := pgtest.New(b)
	pool := projectionstest.Pool(b, url, postgres.DefaultMaxConns) // as usersd serve runs
	log := quietLogger()
	keys, streamKey := openKeys(b, ctx, pool, newKEK(b))
	codec := eventstore.NewCodec(keys, streamKey)
	store := pgstore.New(pool, pgstore.WithLogger(log))
	deps := eventstoretest.DepsWithCaches(store, codec, commands.EphemeralLinkSecrets(), eventstoretest.ServeCaches)
	people := postgres.NewPersonDirectory(pool)
	deps.People, deps.Keys = people, keys // the accounts record the deletion (deps.Deleter)

	waiter := startReadSide(b, ctx, pool, store, eventstore.Source{Store: store, Codec: codec}, log, nil)
	env := &eraseEnv{
		app:     commands.NewApplication(deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{}).Commands,
		secrets: deps.Secrets, keys: keys, people: people, waiter: waiter,
		workspaces: make([]uuid.UUID, n), owners: make([]uuid.UUID, n),
	}
	system := commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "bench-erase-seed"}
	env.parallel(b, n, func(i int) (domain.Position, error) {
		res, err := env.app.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
			Name: fmt.Sprintf("Erase workspace %d", i), OwnerEmail: fmt.Sprintf("owner.%d@erase.example.com", i), OwnerName: "Owner", Meta: system,
		})
		env.workspaces[i], env.owners[i] = res.WorkspaceID, res.OwnerUserID
		return res.Position, err
	})
	return env
}

// parallel runs f for 0..n-1 on a few workers and waits until the user
// list and the accounts read model show every event they appended.
func (env *eraseEnv) parallel(b *testing.B, n int, f func(i int) (domain.Position, error)) {
	b.Helper()
	env.await(b, inParallel(b, n, eraseSeedWorkers, f))
}

func (env *eraseEnv) await(b *testing.B, pos domain.Position) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.waiter.WaitFor(ctx, pos, "userlist", "memberships"); err != nil {
		b.Fatalf("wait for the read models: %v", err)
	}
}

// seedPerson invites a new address into every workspace, accepts the
// invitations of the even ones, and waits until the read models show it.
func (env *eraseEnv) seedPerson(b *testing.B, ctx context.Context) uuid.UUID {
	b.Helper()
	env.seeded++
	email := fmt.Sprintf("person.%d@erase.example.com", env.seeded)
	ids := make([]uuid.UUID, len(env.workspaces))
	env.parallel(b, len(env.workspaces), func(i int) (domain.Position, error) {
		ws := env.workspaces[i]
		owner := commands.Meta{Actor: domain.Actor{UserID: env.owners[i]}, CorrelationID: "bench-erase-seed"}
		inv, err := env.app.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: ws, Emails: []string{email}, Role: string(domain.RoleEditor), Meta: owner})
		if err != nil {
			return domain.Position{}, err
		}
		r := inv.Results[0]
		if r.Outcome != domain.OutcomeInvited {
			return domain.Position{}, fmt.Errorf("invite %s: %s %s", r.Email, r.Outcome, r.Detail)
		}
		ids[i] = r.UserID
		if i%2 == 1 {
			return inv.Position, nil
		}
		acc, err := env.app.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{
			Token: commands.InvitationLinkToken(env.secrets, ws, r.InvitationID, 1), Name: fmt.Sprintf("Person %d", env.seeded),
			Meta: commands.Meta{CorrelationID: "bench-erase-seed"},
		})
		return acc.Position, err
	})
	for _, id := range ids[1:] {
		if id != ids[0] {
			b.Fatalf("one address got two user ids: %s and %s", ids[0], id)
		}
	}
	p, err := env.people.Person(ctx, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	if !p.Registered || p.Deleted || len(p.Workspaces) != len(env.workspaces) {
		b.Fatalf("before deletion the directory shows registered=%t deleted=%t in %d workspaces, want a live account in %d",
			p.Registered, p.Deleted, len(p.Workspaces), len(env.workspaces))
	}
	return ids[0]
}

// checkErased: the key is gone and, once the read models caught up with
// the deletion, the directory shows the person deleted and in no workspace.
func (env *eraseEnv) checkErased(b *testing.B, ctx context.Context, user uuid.UUID, res commands.DeleteAccountResult) {
	b.Helper()
	if _, erased, err := env.keys.Erased(ctx, user); err != nil || !erased {
		b.Fatalf("after deletion the key is not erased (err %v)", err)
	}
	env.await(b, res.Position)
	p, err := env.people.Person(ctx, user)
	if err != nil {
		b.Fatal(err)
	}
	if !p.Deleted || len(p.Workspaces) != 0 {
		b.Fatalf("after deletion the directory shows deleted=%t in %d workspaces, want deleted in none", p.Deleted, len(p.Workspaces))
	}
}
