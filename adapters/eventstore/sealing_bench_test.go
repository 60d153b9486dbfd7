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
	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// BenchmarkSealingAppend measures what sealing costs a write: one
// invitation of a new address per command (an AccountRegistered on the
// address's stream, then a UserInvited on the workspace's, the invitee's
// address and the acting admin's address and request context sealed)
// through the PostgreSQL store, with the codec usersd runs (keys from the
// PostgreSQL key store, adapters/keystore) and with a codec that writes
// every value in clear as usersd did before sealing
// (NewPlainCodecForBenchmark, test builds only). The two sides alternate
// within each iteration on the same database, so that drift on a noisy
// machine hits both alike; ratio is sealed/plain events per second (the
// issue's goal: ≥ 0.8).
func BenchmarkSealingAppend(b *testing.B) {
	ctx := context.Background()
	pool, _ := pgtest.New(b)
	store := pgstore.New(pool)
	b.Cleanup(store.Close)
	kek, err := pii.ParseKEK(pii.GenerateKEK())
	if err != nil {
		b.Fatal(err)
	}
	keys := keystore.New(pool, kek).EventsInThisDatabase() // as serve runs on the PostgreSQL store
	streamKey, err := keys.ServerKey(ctx, "stream-names")
	if err != nil {
		b.Fatal(err)
	}

	// The product's daily limits would stop a long run: the same policy
	// without them.
	policy := commands.DefaultInvitationPolicy()
	policy.Limits = domain.InviteLimits{PerWorkspace: 1 << 30, PerInviter: 1 << 30}
	type side struct {
		app       commands.Application
		ws, admin uuid.UUID
		spent     time.Duration
	}
	setup := func(codec *eventstore.Codec) *side {
		app := commands.NewApplication(eventstoretest.DepsWithCaches(store, codec, commands.EphemeralLinkSecrets(), eventstoretest.Caches{Workspaces: 16, Accounts: 1000}),
			policy, commands.Instrumentation{})
		ws, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{Name: "Bench", OwnerEmail: "owner-" + uuid.NewString() + "@example.com",
			OwnerName: "Olga Owner", Meta: commands.Meta{Actor: domain.Actor{System: true}}})
		if err != nil {
			b.Fatal(err)
		}
		return &side{app: app, ws: ws.WorkspaceID, admin: ws.OwnerUserID}
	}
	plain := setup(eventstore.NewPlainCodecForBenchmark(keys, streamKey))
	timed := &timedKeyring{Keyring: keys}
	sealed := setup(eventstore.NewCodec(timed, streamKey))
	request := &domain.RequestContext{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Firefox/127.0"}
	invite := func(s *side, i int) {
		start := time.Now()
		res, err := s.app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{
			WorkspaceID: s.ws, Emails: []string{fmt.Sprintf("invitee-%d-%s@example.com", i, s.ws)}, Role: "Editor",
			Meta: commands.Meta{Actor: domain.Actor{UserID: s.admin}, Request: request},
		})
		s.spent += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Results) != 1 || res.Results[0].Outcome != domain.OutcomeInvited {
			b.Fatalf("invitation: %+v, want one invited", res.Results)
		}
	}
	// Warm up both sides: the workspaces into their repositories' caches,
	// the connections into the pool.
	for i := range 20 {
		invite(plain, -1-i)
		invite(sealed, -1-i)
	}
	plain.spent, sealed.spent, timed.spent = 0, 0, 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Which side goes first alternates, so that neither always
		// follows the other's writes (autovacuum, checkpoints).
		first, second := plain, sealed
		if i%2 == 1 {
			first, second = sealed, plain
		}
		invite(first, i)
		invite(second, i)
	}
	b.StopTimer()
	plainEvents, sealedEvents := workspaceEvents(b, store, plain.ws), workspaceEvents(b, store, sealed.ws)
	if len(plainEvents) != len(sealedEvents) {
		b.Fatalf("the sides wrote %d and %d workspace events", len(plainEvents), len(sealedEvents))
	}
	assertSealed(b, plainEvents, false)
	assertSealed(b, sealedEvents, true)

	// Each invitation is two events: the account reservation and the
	// invitation.
	events := float64(2 * b.N)
	plainRate, sealedRate := events/plain.spent.Seconds(), events/sealed.spent.Seconds()
	b.ReportMetric(plainRate, "plain-events/s")
	b.ReportMetric(sealedRate, "sealed-events/s")
	b.ReportMetric(float64(plain.spent.Microseconds())/float64(b.N), "plain-µs/cmd")
	b.ReportMetric(float64(sealed.spent.Microseconds())/float64(b.N), "sealed-µs/cmd")
	// The part of a sealed command spent waiting for the key store (its
	// Ensure: one round trip per encoded batch, an insert for a new
	// person).
	b.ReportMetric(float64(timed.spent.Microseconds())/float64(b.N), "sealed-keys-µs/cmd")
	b.ReportMetric(sealedRate/plainRate, "ratio")
}

// timedKeyring adds up the time spent in a keyring's Ensure.
type timedKeyring struct {
	pii.Keyring
	spent time.Duration
}

func (t *timedKeyring) Ensure(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	start := time.Now()
	defer func() { t.spent += time.Since(start) }()
	return t.Keyring.Ensure(ctx, subjects)
}

// workspaceEvents reads a workspace's stream as stored.
func workspaceEvents(b *testing.B, store eventstore.Store, ws uuid.UUID) []eventstore.RecordedEvent {
	b.Helper()
	evs, err := store.ReadStream(context.Background(), eventstore.WorkspaceStream(ws), eventstore.ReadOptions{})
	if err != nil || len(evs) == 0 {
		b.Fatalf("read %s: %d events, %v", ws, len(evs), err)
	}
	return evs
}

// assertSealed checks that the last invitation of a workspace was stored
// sealed, or plain: the two sides measured what they claim to.
func assertSealed(b *testing.B, evs []eventstore.RecordedEvent, sealed bool) {
	b.Helper()
	// A keyring without keys: Stored, which is what is checked, does not
	// need any.
	rec, err := eventstore.NewCodec(pii.NewMemoryKeyring(), make([]byte, 32)).DecodeOne(context.Background(), evs[len(evs)-1])
	if err != nil {
		b.Fatal(err)
	}
	inv, ok := rec.Stored.Event.(domain.UserInvited)
	if !ok || pii.IsSealed(inv.Email) != sealed || pii.IsSealed(rec.Stored.Metadata.Actor.Email) != sealed ||
		rec.Stored.Metadata.Request == nil || pii.IsSealed(rec.Stored.Metadata.Request.IP) != sealed {
		b.Fatalf("last event, want sealed=%v: %T %+v, metadata %+v", sealed, rec.Stored.Event, rec.Stored.Event, rec.Stored.Metadata)
	}
}
