package benchmarks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/testenv"
	historymodel "github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

const (
	reviewGoal  = 2 * time.Second
	reviewPages = 200 // user-list pages read beside each start
)

// BenchmarkAccessReviewStart times the start of an access review of a
// workspace of USERSD_BENCH_REVIEW_MEMBERS members (default 10,000) with
// USERSD_BENCH_REVIEW_EVENTS events of history (default 200,000: the joins,
// then logins, role changes, suspensions and reactivations at random),
// seeded into the user list and the history through Apply. A start is its
// two costs: the aggregate's decision (StartAccessReview and Commit on the
// workspace replayed in memory, which freezes the population) and the
// history's Apply of AccessReviewStarted in its own transaction (the
// INSERT … SELECT that materialises every item from the intervals as of the
// start, granted by and at included). Beside it, in the same run, pages of
// 50 of the same workspace's current user list, and the read of the whole
// review (every item, as GET .../access-reviews/{id} reads it). Goal: a
// start < 2 s.
func BenchmarkAccessReviewStart(b *testing.B) {
	members := testenv.PositiveInt(b, "USERSD_BENCH_REVIEW_MEMBERS", 10_000)
	events := testenv.PositiveInt(b, "USERSD_BENCH_REVIEW_EVENTS", 200_000)
	ctx := context.Background()
	pool, _ := pgtest.New(b)
	ws := uuid.New()
	seedAsOf(b, ctx, pool, ws, members, events)
	var last domain.Position
	var c, p int64
	if err := pool.QueryRow(ctx, "SELECT pos_commit, pos_prepare FROM history_workspaces WHERE workspace_id = $1", ws).Scan(&c, &p); err != nil {
		b.Fatal(err)
	}
	last = domain.Position{Commit: uint64(c), Prepare: uint64(p)}
	agg, admin, ids := reviewAggregate(ws, members)
	h, cur := historymodel.New(), userlist.NewQueries(pool, nil)
	q := historymodel.NewQueries(pool)

	var starts, decides, materialises, reads, pages latencies
	var items int
	b.ResetTimer()
	for i := range b.N {
		id := uuid.New()
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		t0 := time.Now()
		if err := agg.StartAccessReview(admin, id, fmt.Sprintf("Review %d", i), now); err != nil {
			b.Fatal(err)
		}
		ev := agg.Pending()[0]
		agg.Commit()
		t1 := time.Now()
		last = domain.Position{Commit: last.Commit + 1, Prepare: last.Prepare + 1}
		rec := domain.RecordedEvent{
			Envelope: domain.Envelope{Event: domain.AccessReviewStarted{WorkspaceID: ws, ReviewID: id, Name: fmt.Sprintf("Review %d", i),
				Items: ev.(domain.AccessReviewStarted).Items, StartedAt: now},
				Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: now, Actor: domain.Actor{UserID: admin}}},
			StreamID: "workspace-" + ws.String(), Position: last,
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return h.Apply(ctx, tx, []domain.RecordedEvent{rec}) }); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		decides, materialises, starts = append(decides, t1.Sub(t0)), append(materialises, t2.Sub(t1)), append(starts, t2.Sub(t0))

		b.StopTimer()
		t3 := time.Now()
		r, err := q.Review(ctx, ws, id)
		if err != nil {
			b.Fatal(err)
		}
		reads = append(reads, time.Since(t3))
		if items = len(r.Items); items != ev.(domain.AccessReviewStarted).Items {
			b.Fatalf("the review holds %d items, the start event %d", items, ev.(domain.AccessReviewStarted).Items)
		}
		for range reviewPages {
			t4 := time.Now()
			if _, err := cur.List(ctx, ws, userlist.Filter{}); err != nil {
				b.Fatal(err)
			}
			pages = append(pages, time.Since(t4))
		}
		// A completed review frees the aggregate's population, as the
		// service's reviews would, so the open-review limit never bites.
		for _, user := range ids {
			if err := agg.DecideAccessReviewItem(admin, id, user, domain.DecisionKeep, "", ""); err != nil {
				b.Fatal(err)
			}
		}
		agg.Commit()
		if err := agg.CompleteAccessReview(admin, id); err != nil {
			b.Fatal(err)
		}
		agg.Commit()
		b.StartTimer()
	}
	b.StopTimer()
	worst := starts.Percentile(100)
	b.ReportMetric(ms(starts.Percentile(50)), "start-ms")
	b.ReportMetric(ms(worst), "start-max-ms")
	b.ReportMetric(ms(decides.Percentile(50)), "decide-ms")
	b.ReportMetric(ms(materialises.Percentile(50)), "materialise-ms")
	b.ReportMetric(ms(reads.Percentile(50)), "read-review-ms")
	b.ReportMetric(us(pages.Percentile(50)), "page-p50-us")
	b.ReportMetric(us(pages.Percentile(99)), "page-p99-us")
	b.ReportMetric(float64(items), "items")
	summary(b, "a review of %d items starts in %.0f ms (worst %.0f ms: decision %.1f ms, materialisation %.0f ms), goal < %s %s; "+
		"its read %.0f ms; a user-list page p50 %.0f µs, p99 %.0f µs (%d members, %d events)",
		items, ms(starts.Percentile(50)), ms(worst), ms(decides.Percentile(50)), ms(materialises.Percentile(50)), reviewGoal,
		verdict(worst < reviewGoal), ms(reads.Percentile(50)), us(pages.Percentile(50)), us(pages.Percentile(99)), members, events)
}

// reviewAggregate replays a workspace of members people (its owner, an
// Admin, and members-1 invitations, all but one in twenty accepted) into
// the aggregate: its owner and everyone's id.
func reviewAggregate(ws uuid.UUID, members int) (*domain.Workspace, uuid.UUID, []uuid.UUID) {
	w := domain.NewWorkspace(ws)
	owner := uuid.New()
	now := time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []domain.Event{domain.WorkspaceCreated{WorkspaceID: ws, Name: "Big workspace", OwnerUserID: owner,
		OwnerEmail: "owner@big.example.com", OwnerName: "Owner", CreatedAt: now}}
	ids := []uuid.UUID{owner}
	for i := 1; i < members; i++ {
		user, inv := uuid.New(), uuid.New()
		email := fmt.Sprintf("member.%d@example.com", i)
		events = append(events, domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email, Role: "Editor",
			InvitedBy: owner, InviterRole: "Admin", TokenHash: "x", InvitedAt: now, ExpiresAt: now.Add(invitationTTL)})
		if i%20 != 0 {
			events = append(events, domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email,
				Name: fmt.Sprintf("Member %d", i), Role: "Editor", AcceptedAt: now})
		}
		ids = append(ids, user)
	}
	w.Replay(events...)
	return w, owner, ids
}
