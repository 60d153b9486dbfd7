package userlist_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/userlist"
)

// dormantPerson is a seeded person with the last login the list should show.
type dormantPerson struct {
	person
	last *time.Time
}

// seedDormant records a workspace whose people logged in at various times
// (some at the same instant, so the user id breaks ties), some never, with
// invitations pending and a member removed after logging in.
func seedDormant(t *testing.T) (*userlist.Queries, uuid.UUID, []dormantPerson) {
	t.Helper()
	pool, _ := pgtest.New(t)
	h, w := newWorld()
	ws := uuid.New()
	people := seedList(w, ws, 40)
	var out []dormantPerson
	for i, p := range people {
		d := dormantPerson{person: p}
		if p.status != domain.StatusInvited && i%4 != 3 {
			// Five distinct instants, each shared by several people.
			at := t0.Add(time.Duration(i%5) * 24 * time.Hour)
			h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: p.id, LoggedInAt: at})
			if i%7 == 0 {
				// An earlier login after a later one changes nothing.
				h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: p.id, LoggedInAt: at.Add(-time.Hour)})
			}
			d.last = &at
		}
		out = append(out, d)
	}
	// Removed after a login: gone from the list, whatever the sort.
	gone := uuid.New()
	w.join(ws, people[0].id, gone, "gone@example.com", "Gone", domain.RoleEditor)
	h.add(domain.UserLoggedIn{WorkspaceID: ws, UserID: gone, LoggedInAt: t0})
	h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: gone, Email: "gone@example.com", Role: "Editor"})
	// Another workspace's people never show.
	seedList(w, uuid.New(), 5)
	// Small batches, so that a login and the row it belongs to are often
	// applied apart.
	var batches [][]domain.RecordedEvent
	for i := 0; i < len(h.events); i += 7 {
		batches = append(batches, h.events[i:min(i+7, len(h.events))])
	}
	apply(t, pool, "public", batches...)
	return userlist.NewQueries(pool, fixedClock(t0)), ws, out
}

// loginKey orders never before any login.
func loginKey(p dormantPerson) int64 {
	if p.last == nil {
		return -1 << 62
	}
	return p.last.UnixMicro()
}

// expectDormant answers what the list should show for f, in its order.
func expectDormant(people []dormantPerson, f userlist.Filter) []uuid.UUID {
	var since *time.Time
	if f.InactiveSince != "" {
		s, err := time.Parse(time.RFC3339Nano, f.InactiveSince)
		if err != nil {
			panic(err)
		}
		since = &s
	}
	var keep []dormantPerson
	for _, p := range people {
		if f.Status != "" && string(p.status) != f.Status || f.Role != "" && string(p.role) != f.Role {
			continue
		}
		if since != nil && (p.status == domain.StatusInvited || p.last != nil && !p.last.Before(*since)) {
			continue
		}
		keep = append(keep, p)
	}
	slices.SortFunc(keep, func(a, b dormantPerson) int {
		c := func() int {
			if x, y := loginKey(a), loginKey(b); x != y {
				if x < y {
					return -1
				}
				return 1
			}
			return slices.Compare(a.id[:], b.id[:])
		}()
		if f.Sort == userlist.SortLastLoginDesc {
			return -c
		}
		return c
	})
	ids := make([]uuid.UUID, len(keep))
	for i, p := range keep {
		ids[i] = p.id
	}
	return ids
}

// listAll pages through the list with f and answers the user ids in order.
func listAll(t *testing.T, q *userlist.Queries, ws uuid.UUID, f userlist.Filter) ([]uuid.UUID, []userlist.Row) {
	t.Helper()
	var ids []uuid.UUID
	var rows []userlist.Row
	for range 1000 {
		page, err := q.List(context.Background(), ws, f)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		for _, r := range page.Items {
			ids = append(ids, r.UserID)
			rows = append(rows, r)
		}
		if page.NextCursor == "" {
			return ids, rows
		}
		f.Cursor = page.NextCursor
	}
	t.Fatal("the list does not end")
	return nil, nil
}

func TestListByLastLogin(t *testing.T) {
	t.Parallel()
	q, ws, people := seedDormant(t)
	since := t0.Add(3 * 24 * time.Hour).Format(time.RFC3339)
	for _, sortBy := range []string{userlist.SortLastLogin, userlist.SortLastLoginDesc} {
		for _, f := range []userlist.Filter{
			{},
			{InactiveSince: since},
			{InactiveSince: t0.Format(time.RFC3339)},
			{InactiveSince: since, Status: "suspended"},
			{InactiveSince: since, Status: "invited"},
			{Role: "Editor"},
			{Status: "invited"},
		} {
			f.Sort = sortBy
			for _, limit := range []int{1, 3, 50} {
				f.Limit = limit
				got, rows := listAll(t, q, ws, f)
				want := expectDormant(people, f)
				if !slices.Equal(got, want) {
					t.Errorf("%+v: got %d rows %v, want %d %v", f, len(got), got, len(want), want)
				}
				for _, r := range rows {
					if p := people[slices.IndexFunc(people, func(p dormantPerson) bool { return p.id == r.UserID })]; fmt.Sprint(derefTime(r.LastLoginAt)) != fmt.Sprint(derefTime(p.last)) {
						t.Errorf("%s: lastLoginAt %v, want %v", r.UserID, derefTime(r.LastLoginAt), derefTime(p.last))
					}
				}
			}
		}
	}
	if got := expectDormant(people, userlist.Filter{InactiveSince: since}); len(got) == 0 || len(got) == len(people) {
		t.Fatalf("the seed does not exercise inactiveSince: %d of %d", len(got), len(people))
	}
}

func TestInactiveSinceByName(t *testing.T) {
	t.Parallel()
	q, ws, people := seedDormant(t)
	since := t0.Add(2 * 24 * time.Hour)
	f := userlist.Filter{InactiveSince: since.Format(time.RFC3339Nano), Limit: 4}
	_, rows := listAll(t, q, ws, f)
	want := map[uuid.UUID]bool{}
	for _, id := range expectDormant(people, f) {
		want[id] = true
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if !want[r.UserID] {
			t.Errorf("%s (last login %v, %s) is listed as inactive since %v", r.UserID, derefTime(r.LastLoginAt), r.Status, since)
		}
		if i > 0 && strings.ToLower(rows[i-1].DisplayName) > strings.ToLower(r.DisplayName) {
			t.Errorf("not sorted by name: %q before %q", rows[i-1].DisplayName, r.DisplayName)
		}
	}
}

func TestDormantBadInput(t *testing.T) {
	t.Parallel()
	q, ws, _ := seedDormant(t)
	ctx := context.Background()
	byLogin, err := q.List(ctx, ws, userlist.Filter{Sort: userlist.SortLastLogin, Limit: 2})
	if err != nil || byLogin.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, byLogin.NextCursor)
	}
	byName, err := q.List(ctx, ws, userlist.Filter{Limit: 2})
	if err != nil || byName.NextCursor == "" {
		t.Fatalf("first page: %v", err)
	}
	for _, tc := range []struct {
		f     userlist.Filter
		field string
	}{
		{userlist.Filter{Sort: "lastlogin"}, "sort"},
		{userlist.Filter{Sort: "+lastLoginAt"}, "sort"},
		{userlist.Filter{Sort: "email"}, "sort"},
		{userlist.Filter{InactiveSince: "2026-01-01"}, "inactiveSince"},
		{userlist.Filter{InactiveSince: "yesterday"}, "inactiveSince"},
		{userlist.Filter{InactiveSince: "2026-13-01T00:00:00Z"}, "inactiveSince"},
		// A cursor is valid only for its own sort and inactiveSince.
		{userlist.Filter{Cursor: byLogin.NextCursor}, "cursor"},
		{userlist.Filter{Sort: userlist.SortLastLoginDesc, Cursor: byLogin.NextCursor}, "cursor"},
		{userlist.Filter{Sort: userlist.SortLastLogin, InactiveSince: "2030-01-01T00:00:00Z", Cursor: byLogin.NextCursor}, "cursor"},
		{userlist.Filter{Sort: userlist.SortLastLogin, Cursor: byName.NextCursor}, "cursor"},
	} {
		_, err := q.List(ctx, ws, tc.f)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != tc.field {
			t.Errorf("%+v: got %v, want invalid_input about %s", tc.f, err, tc.field)
		}
	}
	// The default sort spelt out is the default: its cursors are the same.
	if _, err := q.List(ctx, ws, userlist.Filter{Sort: userlist.SortDisplayName, Cursor: byName.NextCursor}); err != nil {
		t.Errorf("sort=displayName with a cursor of the default sort: %v", err)
	}
}
