package webhooks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/webhooks"
)

var t0 = time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)

// history makes recorded events at growing positions.
type history struct{ n uint64 }

func (h *history) next(e domain.Event) domain.RecordedEvent {
	h.n++
	env := domain.Envelope{Event: e, Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: t0.Add(time.Duration(h.n) * time.Minute)}}
	return domain.RecordedEvent{Envelope: env, Stored: env, Position: domain.Position{Commit: 100 + h.n, Prepare: h.n}}
}

func apply(t *testing.T, pool *pgxpool.Pool, events ...domain.RecordedEvent) webhooks.Plan {
	t.Helper()
	var plan webhooks.Plan
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		plan, err = webhooks.Apply(context.Background(), tx, events)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func ids(plan webhooks.Plan) []string {
	var out []string
	for _, d := range plan.Deliveries {
		out = append(out, fmt.Sprintf("%s:%s", d.WebhookID.String()[:4], domain.EventName(d.Event.Event)))
	}
	return out
}

func TestApply(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	var h history
	ws, other := uuid.New(), uuid.New()
	a := uuid.MustParse("aaaa0000-0000-4000-8000-000000000001")
	b := uuid.MustParse("bbbb0000-0000-4000-8000-000000000002")
	c := uuid.MustParse("cccc0000-0000-4000-8000-000000000003")
	invited := func(w uuid.UUID) domain.UserInvited {
		return domain.UserInvited{WorkspaceID: w, UserID: uuid.New(), Role: "Editor"}
	}
	changed := domain.RoleChanged{WorkspaceID: ws, UserID: uuid.New(), FromRole: "Editor", ToRole: "Admin"}
	before := h.next(invited(ws))
	subA := h.next(domain.WebhookSubscribed{WorkspaceID: ws, WebhookID: a, URL: "https://a.example/", Events: []string{"*"}})
	inv1 := h.next(invited(ws))
	subB := h.next(domain.WebhookSubscribed{WorkspaceID: ws, WebhookID: b, URL: "https://b.example/", Events: []string{"RoleChanged"}})
	elsewhere := h.next(invited(other))
	role := h.next(changed)
	account := h.next(domain.AccountRegistered{UserID: uuid.New(), Email: "x@example.com"})

	// In one batch, or one event at a time: the same deliveries.
	plan := apply(t, pool, before, subA, inv1, subB, elsewhere, role, account)
	want := "[aaaa:WebhookSubscribed aaaa:UserInvited aaaa:WebhookSubscribed aaaa:RoleChanged bbbb:RoleChanged]"
	if got := fmt.Sprint(ids(plan)); got != want {
		t.Fatalf("deliveries: %s, want %s", got, want)
	}
	// Applied again (a takeover replaying a batch): the same plan, no new rows.
	if got := fmt.Sprint(ids(apply(t, pool, before, subA, inv1, subB, elsewhere, role, account))); got != want {
		t.Fatalf("deliveries applied again: %s, want %s", got, want)
	}
	var rows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries`).Scan(&rows); err != nil || rows != 5 {
		t.Fatalf("log rows: %d (%v), want 5", rows, err)
	}

	// Removal: the log goes, and the webhook gets nothing more, not even its
	// removal; a subscription and its removal in one batch deliver nothing.
	inv2 := h.next(invited(ws))
	gone := h.next(domain.WebhookRemoved{WorkspaceID: ws, WebhookID: a, URL: "https://a.example/"})
	subC := h.next(domain.WebhookSubscribed{WorkspaceID: ws, WebhookID: c, URL: "https://c.example/", Events: []string{"*"}})
	role2 := h.next(changed)
	goneC := h.next(domain.WebhookRemoved{WorkspaceID: ws, WebhookID: c, URL: "https://c.example/"})
	plan = apply(t, pool, inv2, gone, subC, role2, goneC)
	if got, want := fmt.Sprint(ids(plan)), "[bbbb:RoleChanged]"; got != want {
		t.Fatalf("deliveries around removals: %s, want %s", got, want)
	}
	if fmt.Sprint(plan.Removed) != fmt.Sprint([]uuid.UUID{a, c}) {
		t.Fatalf("removed: %v, want %v and %v", plan.Removed, a, c)
	}
	list, err := webhooks.NewQueries(pool).List(context.Background(), ws)
	if err != nil || len(list) != 1 || list[0].WebhookID != b || list[0].URL != "https://b.example/" || !list[0].CreatedAt.Equal(subB.Metadata.OccurredAt) {
		t.Fatalf("list: %+v, %v; want webhook b", list, err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1`, a).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("log rows of the removed webhook: %d (%v)", rows, err)
	}

	// A replay asked for: a job from its position to the request, for the
	// webhook's types only.
	req := h.next(domain.WebhookReplayRequested{WorkspaceID: ws, WebhookID: b, FromPosition: before.Position.String()})
	apply(t, pool, req)
	r, ok, err := webhooks.NextReplay(context.Background(), pool)
	if err != nil || !ok || r.WebhookID != b || r.Next != before.Position || r.To != req.Position {
		t.Fatalf("replay: %+v %v %v", r, ok, err)
	}
	history := []domain.RecordedEvent{before, subA, inv1, subB, elsewhere, role, account, inv2, gone, subC, role2, goneC, req, h.next(changed)}
	deliveries, done := r.Deliveries(history[1:4])
	if len(deliveries) != 0 || done {
		t.Fatalf("replay of the first events: %d deliveries, done %v; want none, not done", len(deliveries), done)
	}
	deliveries, done = r.Deliveries(history[4:])
	var got []string
	for _, d := range deliveries {
		got = append(got, domain.EventName(d.Event.Event))
		if d.Replay != r.ID || d.ID == webhooks.DeliveryID(b, d.Event.Metadata.EventID, uuid.Nil) {
			t.Errorf("replayed delivery %+v: want the replay's id in it", d)
		}
	}
	if fmt.Sprint(got) != "[RoleChanged RoleChanged]" || !done {
		t.Fatalf("replayed: %v, done %v; want both role changes before the request, done", got, done)
	}
}

func TestDeliveriesPages(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	var h history
	ws, hook := uuid.New(), uuid.New()
	events := []domain.RecordedEvent{h.next(domain.WebhookSubscribed{WorkspaceID: ws, WebhookID: hook, URL: "https://a.example/", Events: []string{"*"}})}
	for range 6 {
		events = append(events, h.next(domain.MemberSuspended{WorkspaceID: ws, UserID: uuid.New(), Role: "Editor"}))
	}
	apply(t, pool, events...)
	q := webhooks.NewQueries(pool)
	var seen []uuid.UUID
	cursor := ""
	for page := 0; ; page++ {
		p, err := q.Deliveries(context.Background(), ws, hook, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Items {
			seen = append(seen, d.EventID)
			if d.Status != webhooks.StatusPending || d.Attempts != 0 || d.LastStatusCode != nil || d.LastAttemptAt != nil {
				t.Errorf("a delivery never tried: %+v", d)
			}
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
		if page > 3 {
			t.Fatal("too many pages")
		}
	}
	if len(seen) != 7 {
		t.Fatalf("%d deliveries over the pages, want 7", len(seen))
	}
	for i, id := range seen {
		if want := events[len(events)-1-i].Metadata.EventID; id != want {
			t.Fatalf("item %d: event %s, want %s (newest first)", i, id, want)
		}
	}
	for _, bad := range []string{"x", "-1", "01", "99999999999999999999"} {
		if _, err := q.Deliveries(context.Background(), ws, hook, 3, bad); domain.ErrorCode(err) != domain.CodeInvalidInput {
			t.Errorf("cursor %q: %v, want invalid_input", bad, err)
		}
	}
	if _, err := q.Deliveries(context.Background(), uuid.New(), hook, 3, ""); domain.ErrorCode(err) != domain.CodeWebhookNotFound {
		t.Errorf("another workspace's webhook: %v, want webhook_not_found", err)
	}

	// Attempts: counted, the last one's status kept; delivered stays.
	first := events[1].Metadata.EventID
	id := webhooks.DeliveryID(hook, first, uuid.Nil)
	at := t0.Add(time.Hour)
	if err := webhooks.Attempted(context.Background(), pool, []webhooks.Attempt{
		{Delivery: id, Status: 503, At: at}, {Delivery: id, Status: 200, Delivered: true, At: at.Add(time.Second)},
		{Delivery: uuid.New(), Status: 200, Delivered: true, At: at},
	}); err != nil {
		t.Fatal(err)
	}
	if err := webhooks.GaveUp(context.Background(), pool, id); err != nil {
		t.Fatal(err)
	}
	p, err := q.Deliveries(context.Background(), ws, hook, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	d := p.Items[len(p.Items)-2]
	if d.EventID != first || d.Attempts != 2 || d.Status != webhooks.StatusDelivered || d.LastStatusCode == nil || *d.LastStatusCode != 200 ||
		d.LastAttemptAt == nil || !d.LastAttemptAt.Equal(at.Add(time.Second)) {
		t.Fatalf("after two attempts: %+v", d)
	}
}
