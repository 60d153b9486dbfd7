package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// seedMembers appends n joined members to a workspace straight into the
// store, in batches, as the aggregate would have recorded them.
func seedMembers(b *testing.B, store eventstore.Store, ws uuid.UUID, admin uuid.UUID, n int) {
	b.Helper()
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(ws)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 1000
	var data []eventstore.EventData
	flush := func() {
		if len(data) == 0 {
			return
		}
		if _, err := store.Append(ctx, stream, eventstore.StreamExists{}, data...); err != nil {
			b.Fatalf("seed: %v", err)
		}
		data = data[:0]
	}
	meta := func() domain.Metadata {
		return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: at, Actor: domain.Actor{UserID: admin}}
	}
	add := func(e domain.Event) {
		d, err := testCodec.EncodeOne(ctx, e, meta())
		if err != nil {
			b.Fatal(err)
		}
		data = append(data, d)
		if len(data) == batch {
			flush()
		}
	}
	for i := 0; i < n; i++ {
		user, inv := uuid.New(), uuid.New()
		email := fmt.Sprintf("member-%d@example.com", i)
		add(domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email, Role: "Editor",
			InvitedBy: admin, InviterRole: "Admin", TokenHash: "00", InvitedAt: at, ExpiresAt: at.Add(time.Hour)})
		add(domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email, Name: "M", Role: "Editor", AcceptedAt: at})
	}
	flush()
}

// BenchmarkCommandLatency runs the same command (a role change) in a
// workspace of 10 members and in one of 100,000, on the PostgreSQL store and
// the cached repository, alternating between the two so that drift on a
// noisy machine hits both alike. The cache makes both cost one empty
// catch-up read and one append; the ratio is the figure that matters.
func BenchmarkCommandLatency(b *testing.B) {
	pool, _ := pgtest.New(b)
	store := pgstore.New(pool)
	b.Cleanup(store.Close)
	app := commands.NewApplication(eventstoretest.DepsWithCaches(store, testCodec, commands.EphemeralLinkSecrets(), eventstoretest.Caches{Workspaces: 16, Accounts: 1000}),
		commands.DefaultInvitationPolicy(), commands.Instrumentation{})
	ctx := context.Background()
	type target struct {
		ws, admin, user uuid.UUID
		spent           time.Duration
	}
	setup := func(members int) *target {
		ws, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{Name: "Bench", OwnerEmail: "owner@example.com", OwnerName: "O", Meta: commands.Meta{Actor: domain.Actor{System: true}}})
		if err != nil {
			b.Fatal(err)
		}
		seedMembers(b, store, ws.WorkspaceID, ws.OwnerUserID, members)
		// The first command loads the workspace into the cache.
		inv, err := app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{
			WorkspaceID: ws.WorkspaceID, Emails: []string{"target@example.com"}, Role: "Editor", Meta: commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return &target{ws: ws.WorkspaceID, admin: ws.OwnerUserID, user: inv.Results[0].UserID}
	}
	small, big := setup(10), setup(100_000)
	change := app.Commands.ChangeRole
	roles := []string{"Monitor", "Editor"}
	run := func(t *target, i int) {
		start := time.Now()
		if _, err := change.Handle(ctx, commands.ChangeRole{WorkspaceID: t.ws, UserID: t.user, Role: roles[i%2], Meta: commands.Meta{Actor: domain.Actor{UserID: t.admin}}}); err != nil {
			b.Fatal(err)
		}
		t.spent += time.Since(start)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		run(small, i)
		run(big, i)
	}
	n := float64(b.N)
	b.ReportMetric(float64(small.spent.Microseconds())/n, "µs/cmd-10-members")
	b.ReportMetric(float64(big.spent.Microseconds())/n, "µs/cmd-100k-members")
	b.ReportMetric(big.spent.Seconds()/small.spent.Seconds(), "ratio")
}
