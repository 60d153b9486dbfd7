package history_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

// TestRebuild: a rebuild of the history keeps the read models' rebuild
// contract (pgtest.CheckRebuild) over a random history.
func TestRebuild(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	_, events := randomHistory(t, 99, 400, 0)
	pgtest.CheckRebuild(t, pool, history.New(), events, pgtest.RebuildCheck{LiveBatch: 37, RebuildBatch: 101})
}

// stamp records events after the history's last, as a store would.
func stamp(after []domain.RecordedEvent, events ...domain.Event) []domain.RecordedEvent {
	last := after[len(after)-1]
	out := make([]domain.RecordedEvent, len(events))
	for i, e := range events {
		n := uint64(i + 1)
		out[i] = domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion,
				OccurredAt: last.Metadata.OccurredAt.Add(time.Duration(n) * time.Minute)}},
			StreamID: "test", Position: domain.Position{Commit: last.Position.Commit + n, Prepare: last.Position.Prepare + n},
		}
	}
	return out
}

// TestMemberHistory: a member's intervals of role and status, oldest first,
// with who changed them, the event's type and id; logins continue the
// interval they fall in; an unknown person has none.
func TestMemberHistory(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	w := newWorld(t, 5)
	ctx := context.Background()
	events := w.events()
	ws, admin := w.ws, w.admin
	user, inv := uuid.New(), uuid.New()
	more := stamp(events,
		domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: "jane@example.com", Role: "Editor", InvitedBy: admin, InviterRole: "Admin", InvitedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: "jane@example.com", Name: "Jane", Role: "Editor", AcceptedAt: t0},
		domain.UserLoggedIn{WorkspaceID: ws, UserID: user, LoggedInAt: t0.Add(time.Hour)},
		domain.RoleChanged{WorkspaceID: ws, UserID: user, FromRole: "Editor", ToRole: "Admin"},
		domain.MemberSuspended{WorkspaceID: ws, UserID: user},
		domain.MemberRemoved{WorkspaceID: ws, UserID: user},
	)
	for i := range more {
		more[i].Metadata.Actor = domain.Actor{UserID: admin}
	}
	more[1].Metadata.Actor = domain.Actor{UserID: user}
	pgtest.Apply(t, pool, "public", history.New(), events, more[:3], more[3:])
	q := history.NewQueries(pool)
	items, found, err := q.History(ctx, ws, user)
	if err != nil || !found {
		t.Fatalf("History: %v, found %v", err, found)
	}
	type short struct {
		role, status, action string
		by                   uuid.UUID
		event                uuid.UUID
		from                 time.Time
		to                   *time.Time
	}
	at := func(i int) *time.Time { t := more[i].Metadata.OccurredAt; return &t }
	want := []short{
		{"Editor", "invited", "UserInvited", admin, more[0].Metadata.EventID, more[0].Metadata.OccurredAt, at(1)},
		{"Editor", "active", "InvitationAccepted", user, more[1].Metadata.EventID, more[1].Metadata.OccurredAt, at(3)},
		{"Admin", "active", "RoleChanged", admin, more[3].Metadata.EventID, more[3].Metadata.OccurredAt, at(4)},
		{"Admin", "suspended", "MemberSuspended", admin, more[4].Metadata.EventID, more[4].Metadata.OccurredAt, at(5)},
	}
	var got []short
	for _, it := range items {
		s := short{string(it.Role), string(it.Status), it.Action, uuid.Nil, it.EventID, it.From, it.To}
		if it.ChangedBy != nil {
			s.by = *it.ChangedBy
		}
		got = append(got, s)
	}
	eq := func(a, b short) bool {
		return a.role == b.role && a.status == b.status && a.action == b.action && a.by == b.by && a.event == b.event &&
			a.from.Equal(b.from) && (a.to == nil) == (b.to == nil) && (a.to == nil || a.to.Equal(*b.to))
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Errorf("history:\n got %+v\nwant %+v", got, want)
	}
	// The owner's interval is open: to is null while current.
	owner, _, _ := q.History(ctx, ws, admin)
	if len(owner) == 0 || owner[len(owner)-1].To != nil || owner[0].ChangedBy != nil || owner[0].Action != "WorkspaceCreated" {
		t.Errorf("owner's history %+v: want it to start with WorkspaceCreated by the system and end open", owner)
	}
	if items, found, err := q.History(ctx, ws, uuid.New()); err != nil || found || len(items) != 0 {
		t.Errorf("unknown person: %v, %v, %v; want nothing", items, found, err)
	}
	// As of the suspension, the row shows what the list showed then.
	page, err := q.List(ctx, ws, history.AsOf{Position: more[4].Position}, userlist.Filter{Q: "jane"})
	if err != nil || len(page.Items) != 1 || page.Items[0].Status != domain.StatusSuspended || page.Items[0].Role != domain.RoleAdmin ||
		page.Items[0].LastLoginAt == nil {
		t.Errorf("as of the suspension: %+v, %v", page.Items, err)
	}
	page, err = q.List(ctx, ws, history.AsOf{Position: more[5].Position}, userlist.Filter{Q: "jane"})
	if err != nil || len(page.Items) != 0 {
		t.Errorf("as of the removal: %+v, %v; want no row", page.Items, err)
	}
}

// TestAccountDeleted: an account's deletion ends the person's open
// intervals and blanks their address and name in every interval, the
// history keeps the id only, and a replay of events whose values were
// erased (rec.Erased: "") applies.
func TestAccountDeleted(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	w, events := randomHistory(t, 7, 80, 0)
	// Someone who was ever in the list.
	var gone uuid.UUID
	for _, ev := range events {
		if e, ok := ev.Event.(domain.UserInvited); ok {
			gone = e.UserID
			break
		}
	}
	if gone == uuid.Nil {
		t.Fatal("the random history invited no one")
	}
	events = append(events, stamp(events, domain.AccountDeleted{UserID: gone, DeletedAt: t0})...)
	pgtest.Apply(t, pool, "public", history.New(), events[:len(events)/2], events[len(events)/2:])
	// A deletion applied twice (every batch hands it over) changes nothing more.
	before := pgtest.Dump(t, pool, "public", history.New().Tables())
	pgtest.Apply(t, pool, "public", history.New(), events[len(events)-1:])
	if after := pgtest.Dump(t, pool, "public", history.New().Tables()); after != before {
		t.Errorf("the deletion applied again changed the tables")
	}
	ctx := context.Background()
	var kept, open int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE email <> '' OR name IS NOT NULL),
			count(*) FILTER (WHERE valid_to_commit IS NULL)
		FROM membership_intervals WHERE user_id = $1`, gone).Scan(&kept, &open); err != nil {
		t.Fatal(err)
	}
	if kept != 0 || open != 0 {
		t.Errorf("after the deletion: %d intervals keep an address or a name, %d are open; want none", kept, open)
	}
	items, found, err := history.NewQueries(pool).History(ctx, w.ws, gone)
	if err != nil || !found || len(items) == 0 {
		t.Errorf("the erased person's history: %v, %v; want their intervals, by id", found, err)
	}

	// A rebuild after erasure reads their values as "".
	erased := make([]domain.RecordedEvent, len(events))
	copy(erased, events)
	for i, ev := range erased {
		switch e := ev.Event.(type) {
		case domain.UserInvited:
			if e.UserID == gone {
				e.Email = ""
				erased[i].Event, erased[i].Erased = e, []uuid.UUID{gone}
			}
		case domain.InvitationAccepted:
			if e.UserID == gone {
				e.Email, e.Name = "", ""
				erased[i].Event, erased[i].Erased = e, []uuid.UUID{gone}
			}
		}
	}
	schema := "erased"
	pgtest.CreateTables(t, pool, schema, history.New().Schema())
	pgtest.Apply(t, pool, schema, history.New(), erased)
	if got := pgtest.Dump(t, pool, schema, history.New().Tables()); got != before {
		t.Errorf("a replay of the erased events differs from the live tables after the deletion:\n%s\nwant\n%s", got, before)
	}
}

// TestTemporaryRoleHistory: a temporary grant opens an interval that shows
// its end (roleUntil, as the list does); its expiry opens one with the role
// before back, changed by the system; a refused expiry keeps the role and
// drops the end.
func TestTemporaryRoleHistory(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	w := newWorld(t, 11)
	ctx := context.Background()
	ws, admin := w.ws, w.admin
	until := t0.Add(2 * time.Hour)
	more := stamp(w.events(),
		domain.RoleChanged{WorkspaceID: ws, UserID: admin, FromRole: "Admin", ToRole: "Admin"},
		domain.RoleChanged{WorkspaceID: ws, UserID: admin, FromRole: "Admin", ToRole: "Editor", Until: &until},
		domain.RoleGrantExpired{WorkspaceID: ws, UserID: admin, FromRole: "Editor", ToRole: "Admin", Until: until},
		domain.RoleChanged{WorkspaceID: ws, UserID: admin, FromRole: "Admin", ToRole: "Monitor", Until: &until},
		domain.RoleGrantExpiryRefused{WorkspaceID: ws, UserID: admin, Role: "Monitor", PreviousRole: "Admin", Until: until, Reason: "last_admin"},
	)
	for i := range more[:2] {
		more[i].Metadata.Actor = domain.Actor{UserID: admin}
	}
	more[3].Metadata.Actor = domain.Actor{UserID: admin}
	pgtest.Apply(t, pool, "public", history.New(), w.events(), more[:2], more[2:3], more[3:])
	q := history.NewQueries(pool)
	items, _, err := q.History(ctx, ws, admin)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		by := "system"
		if it.ChangedBy != nil {
			by = it.ChangedBy.String()
		}
		got = append(got, string(it.Role)+" "+it.Action+" "+by)
	}
	// The same role again changes nothing shown; the refused expiry
	// changes the end only, which the history's role and status continue.
	want := []string{"Admin WorkspaceCreated system", "Editor RoleChanged " + admin.String(),
		"Admin RoleGrantExpired system", "Monitor RoleChanged " + admin.String()}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n got %q\nwant %q", got, want)
	}
	roleUntil := func(i int) *time.Time {
		page, err := q.List(ctx, ws, history.AsOf{Position: more[i].Position}, userlist.Filter{Q: "olga"})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("as of %s: %+v, %v", more[i].Position, page.Items, err)
		}
		return page.Items[0].RoleUntil
	}
	for i, want := range []*time.Time{nil, &until, nil, &until, nil} {
		if got := roleUntil(i); (got == nil) != (want == nil) || (got != nil && !got.Equal(*want)) {
			t.Errorf("as of %s (%s): roleUntil %v, want %v", more[i].Position, domain.EventName(more[i].Event), got, want)
		}
	}
}

// BenchmarkFold measures what Apply does in memory, folding events into
// intervals, without PostgreSQL: the CPU cost of the list's rules as
// intervals, over a random history of the commands (newWorld) replayed
// from the start.
func BenchmarkFold(b *testing.B) {
	_, events := randomHistory(b, 5, 3000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !history.Fold(events) {
			b.Fatal("an event has no case")
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}
