package memberships_test

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/projectionstest"
)

// BenchmarkApply measures a rebuild: b.N events of a synthetic history
// applied in batches into fresh tables, one transaction per batch. It
// reports events/s. Each batch is a transaction set up as
// projections.Rebuild does (batches of 5000, synchronous_commit off);
// USERSD_BENCH_BATCH sets another batch size.
func BenchmarkApply(b *testing.B) {
	pool, _ := pgtest.New(b)
	schema := "bench_" + strconv.Itoa(b.N)
	createSchema(b, pool, schema)
	projectionstest.ApplyInBatches(b, pool, schema, memberships.New().Apply, newGenerator(b.N).next)
}

// BenchmarkPermissions reads one person's permissions among 200,000
// memberships, as every page load does. It reports p50 and p99 in µs.
func BenchmarkPermissions(b *testing.B) {
	pool, _ := pgtest.New(b)
	ctx := context.Background()
	h := &history{}
	var users, wss []uuid.UUID
	for range 20 {
		ws := uuid.New()
		h.create(ws, uuid.New(), "WS")
		for range 10_000 {
			u := uuid.New()
			h.join(ws, u, domain.RoleEditor)
			users, wss = append(users, u), append(wss, ws)
		}
	}
	for i := 0; i < len(h.events); i += 5000 {
		apply(b, pool, "public", h.events[i:min(i+5000, len(h.events))])
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE memberships"); err != nil {
		b.Fatal(err)
	}
	q := memberships.NewQueries(pool)
	r := rand.New(rand.NewPCG(1, 2))
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		i := r.IntN(len(users))
		start := time.Now()
		_, _, _, found, err := q.Permissions(ctx, wss[i], users[i])
		took = append(took, time.Since(start))
		if err != nil || !found {
			b.Fatalf("found %v err %v", found, err)
		}
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	pct := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs/op")
	b.ReportMetric(pct(0.99), "p99-µs/op")
}

// generator makes a plausible history on demand: invitations, acceptances
// a while later, logins, role changes, suspensions and removals.
type generator struct {
	r       *rand.Rand
	pos     uint64
	ws      uuid.UUID
	members int
	joined  []uuid.UUID
	accepts []pendingAccept
}

type pendingAccept struct {
	due uint64
	e   domain.InvitationAccepted
}

func newGenerator(total int) *generator {
	return &generator{r: rand.New(rand.NewPCG(uint64(total), 7))}
}

func (g *generator) next(n int) []domain.RecordedEvent {
	out := make([]domain.RecordedEvent, 0, n)
	add := func(e domain.Event) {
		g.pos++
		out = append(out, domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: t0}},
			StreamID: "workspace-" + g.ws.String(),
			Position: domain.Position{Commit: g.pos, Prepare: g.pos},
		})
	}
	for len(out) < n {
		if len(g.accepts) > 0 && g.accepts[0].due <= g.pos {
			add(g.accepts[0].e)
			g.joined = append(g.joined, g.accepts[0].e.UserID)
			g.accepts = g.accepts[1:]
			continue
		}
		if g.ws == uuid.Nil || g.members >= 20_000 {
			g.ws, g.members, g.joined = uuid.New(), 0, nil
			add(domain.WorkspaceCreated{WorkspaceID: g.ws, Name: "WS", OwnerUserID: uuid.New(), OwnerEmail: "owner@example.com", OwnerName: "Owner", CreatedAt: t0})
			continue
		}
		switch x := g.r.IntN(100); {
		case x < 40 || len(g.joined) == 0:
			g.members++
			user, inv := uuid.New(), uuid.New()
			add(domain.UserInvited{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Email: "u@example.com", Role: "AgentUser"})
			add(domain.InvitationEmailSent{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Attempt: 1})
			g.accepts = append(g.accepts, pendingAccept{g.pos + 1500, domain.InvitationAccepted{WorkspaceID: g.ws, InvitationID: inv, UserID: user, Role: "AgentUser"}})
		case x < 90:
			add(domain.UserLoggedIn{WorkspaceID: g.ws, UserID: g.joined[g.r.IntN(len(g.joined))], LoggedInAt: t0})
		case x < 95:
			add(domain.RoleChanged{WorkspaceID: g.ws, UserID: g.joined[g.r.IntN(len(g.joined))], ToRole: "Editor"})
		case x < 98:
			add(domain.MemberSuspended{WorkspaceID: g.ws, UserID: g.joined[g.r.IntN(len(g.joined))]})
		default:
			add(domain.MemberReactivated{WorkspaceID: g.ws, UserID: g.joined[g.r.IntN(len(g.joined))]})
		}
	}
	return out
}
