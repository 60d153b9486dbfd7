package userlist_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/userlist"
)

// person is what the list should show of one seeded person.
type person struct {
	id      uuid.UUID
	display string
	email   string
	role    domain.Role
	status  domain.Status
}

// Names repeat in several letter cases, so the user id must break ties.
var seedNames = []string{"alex", "Alex", "ALEX", "Émile Zola", "bob", "Carla Díaz", "dave", "Zoë", "eve", "Mallory"}

var seedRoles = []domain.Role{domain.RoleAgentUser, domain.RoleEditor, domain.RoleMonitor, domain.RoleManager, domain.RoleAgentUser, domain.RoleAdmin}

// seedList records a workspace of n people besides its owner: every tenth
// only invited (shown by e-mail), every tenth suspended, the rest active.
// seededList applies to a fresh database a workspace seeded with n people
// by seedList, then one more workspace for each of others (n people each),
// and answers the list's queries at t0, the first workspace and its people.
func seededList(t *testing.T, n int, others ...int) (*userlist.Queries, uuid.UUID, []person) {
	t.Helper()
	pool, _ := pgtest.New(t)
	h, w := newWorld()
	ws := uuid.New()
	people := seedList(w, ws, n)
	for _, m := range others {
		seedList(w, uuid.New(), m)
	}
	apply(t, pool, "public", h.events)
	return userlist.NewQueries(pool, fixedClock(t0)), ws, people
}

func seedList(w world, ws uuid.UUID, n int) []person {
	owner := uuid.New()
	w.create(ws, owner, "owner@example.com", "Olivia Owner", "Big")
	people := []person{{owner, "Olivia Owner", "owner@example.com", domain.RoleAdmin, domain.StatusActive}}
	domains := []string{"example.com", "corp.example", "mail.test"}
	for i := range n {
		p := person{id: uuid.New(), email: fmt.Sprintf("user%03d@%s", i, domains[i%len(domains)]), role: seedRoles[i%len(seedRoles)], status: domain.StatusActive}
		if i == 7 {
			p.email = "under_score@example.com"
		}
		inv := w.invite(ws, owner, p.id, p.email, p.role)
		switch i % 10 {
		case 0:
			p.status, p.display = domain.StatusInvited, p.email
		default:
			p.display = seedNames[i%len(seedNames)]
			w.accept(ws, inv, p.id, p.email, p.display, p.role)
			if i%10 == 1 {
				w.h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: p.id, Email: p.email, Role: string(p.role)})
				p.status = domain.StatusSuspended
			}
		}
		people = append(people, p)
	}
	return people
}

// expected answers the people a filter should list, in the list's order.
func expected(people []person, f userlist.Filter) []person {
	var out []person
	q := strings.ToLower(f.Q)
	for _, p := range people {
		if f.Status != "" && !strings.EqualFold(string(p.status), f.Status) ||
			f.Role != "" && !strings.EqualFold(string(p.role), f.Role) {
			continue
		}
		name := ""
		if p.display != p.email {
			name = p.display
		}
		if q != "" && !strings.Contains(strings.ToLower(name), q) && !strings.Contains(p.email, q) {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i].display), strings.ToLower(out[j].display)
		if a != b {
			return a < b
		}
		return bytes.Compare(out[i].id[:], out[j].id[:]) < 0
	})
	return out
}

func TestListPagesFiltersAndOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, ws, people := seededList(t, 230, 20) // another workspace of 20, never listed here

	filters := []userlist.Filter{
		{},
		{Status: "active"},
		{Status: "INVITED"},
		{Status: "suspended"},
		{Role: "Editor"},
		{Role: "admin"},
		{Status: "active", Role: "Monitor"},
		{Q: "ALEX"},
		{Q: "corp"},
		{Q: "émile"},
		{Q: "ZOË"},
		{Q: "_"},
		{Q: "%"},
		{Q: "user01"},
		{Q: "nobody-has-this"},
		{Status: "invited", Q: "example.com"},
	}
	for _, f := range filters {
		for _, limit := range []int{1, 7, 50, 500} {
			f := f
			f.Limit = limit
			t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
				want := expected(people, f)
				var got []userlist.Row
				pages := 0
				for {
					page, err := q.List(ctx, ws, f)
					if err != nil {
						t.Fatalf("List(%+v): %v", f, err)
					}
					pages++
					if len(page.Items) > limit {
						t.Fatalf("page of %d rows, want at most %d", len(page.Items), limit)
					}
					got = append(got, page.Items...)
					if page.NextCursor == "" {
						break
					}
					if len(page.Items) != limit {
						t.Fatalf("a page with a next cursor has %d rows, want a full page of %d", len(page.Items), limit)
					}
					if pages > len(people)+1 {
						t.Fatal("pagination does not end")
					}
					f.Cursor = page.NextCursor
				}
				if len(got) != len(want) {
					t.Fatalf("%d rows over %d pages, want %d", len(got), pages, len(want))
				}
				if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
					t.Errorf("%d pages, want %d (the last page has no next cursor)", pages, wantPages)
				}
				for i := range got {
					g, p := got[i], want[i]
					if g.UserID != p.id || g.DisplayName != p.display || g.Email != p.email || g.Role != p.role || g.Status != p.status {
						t.Fatalf("row %d: got %s, want %s %q %s %s %s", i, describe(g), p.id, p.display, p.email, p.role, p.status)
					}
					if (g.Name == nil) != (p.status == domain.StatusInvited) {
						t.Errorf("row %d: name %v, want nil exactly for invited people", i, deref(g.Name))
					}
					if (g.Invitation != nil) != (p.status == domain.StatusInvited) {
						t.Errorf("row %d: invitation %v, want one exactly for invited people", i, g.Invitation)
					}
				}
			})
		}
	}
}

func TestListEqualNamesAreOrderedByUserID(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h, w := newWorld()
	ws, owner := uuid.New(), uuid.New()
	w.create(ws, owner, "owner@example.com", "Sam", "WS")
	ids := []uuid.UUID{owner}
	for i, name := range []string{"sam", "SAM", "Sam", "sAm"} {
		id := uuid.New()
		ids = append(ids, id)
		w.join(ws, owner, id, fmt.Sprintf("s%d@example.com", i), name, domain.RoleEditor)
	}
	apply(t, pool, "public", h.events)
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })

	q := userlist.NewQueries(pool, fixedClock(t0))
	for _, limit := range []int{1, 2, 5} {
		var got []uuid.UUID
		f := userlist.Filter{Limit: limit}
		for {
			page, err := q.List(ctx, ws, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Items {
				got = append(got, r.UserID)
			}
			if f.Cursor = page.NextCursor; f.Cursor == "" {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("limit %d: order %v, want by user id %v", limit, got, ids)
		}
	}
}

func TestListRejectsInvalidFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, ws, _ := seededList(t, 12)

	first, err := q.List(ctx, ws, userlist.Filter{Limit: 2})
	if err != nil || first.NextCursor == "" {
		t.Fatalf("first page: next cursor %q, err %v; want a cursor", first.NextCursor, err)
	}
	c := first.NextCursor
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	other, err := q.List(ctx, uuid.New(), userlist.Filter{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		ws    uuid.UUID
		f     userlist.Filter
		param string
	}{
		{"unknown status", ws, userlist.Filter{Status: "removed"}, "status"},
		{"unknown role", ws, userlist.Filter{Role: "Owner"}, "role"},
		{"limit below range", ws, userlist.Filter{Limit: -1}, "limit"},
		{"limit above range", ws, userlist.Filter{Limit: userlist.MaxLimit + 1}, "limit"},
		{"query too long", ws, userlist.Filter{Q: strings.Repeat("a", userlist.MaxQueryLength+1)}, "q"},
		{"query with a control character", ws, userlist.Filter{Q: "a\nb"}, "q"},
		{"cursor not base64url", ws, userlist.Filter{Cursor: "!!!"}, "cursor"},
		{"cursor truncated", ws, userlist.Filter{Cursor: c[:len(c)-3]}, "cursor"},
		{"cursor too short", ws, userlist.Filter{Cursor: c[:10]}, "cursor"},
		{"cursor edited in its sort key", ws, userlist.Filter{Cursor: flip(c, len(c)-2)}, "cursor"},
		{"cursor edited in its user id", ws, userlist.Filter{Cursor: flip(c, 5)}, "cursor"},
		{"cursor with bytes added", ws, userlist.Filter{Cursor: c + "AAAA"}, "cursor"},
		{"cursor of another workspace", uuid.New(), userlist.Filter{Cursor: c}, "cursor"},
		{"cursor of another filter", ws, userlist.Filter{Status: "active", Cursor: c}, "cursor"},
		{"cursor far too long", ws, userlist.Filter{Cursor: strings.Repeat("A", 5000)}, "cursor"},
	}
	if other.NextCursor != "" {
		t.Fatal("an empty workspace has a next page")
	}
	for _, tc := range cases {
		_, err := q.List(ctx, tc.ws, tc.f)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != tc.param {
			t.Errorf("%s: err %v, want a *domain.Error invalid_input naming %q", tc.name, err, tc.param)
		}
	}

	// The untouched cursor works, with any page size.
	for _, limit := range []int{0, 1, userlist.MaxLimit} {
		if _, err := q.List(ctx, ws, userlist.Filter{Limit: limit, Cursor: c}); err != nil {
			t.Errorf("limit %d with a valid cursor: %v", limit, err)
		}
	}
}

func TestListLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, ws, people := seededList(t, 120)

	for _, tc := range []struct{ limit, want int }{
		{0, userlist.DefaultLimit},
		{1, 1},
		{userlist.MaxLimit, len(people)},
	} {
		page, err := q.List(ctx, ws, userlist.Filter{Limit: tc.limit})
		if err != nil {
			t.Fatalf("limit %d: %v", tc.limit, err)
		}
		if len(page.Items) != tc.want {
			t.Errorf("limit %d: %d rows, want %d", tc.limit, len(page.Items), tc.want)
		}
		if more := tc.want < len(people); (page.NextCursor != "") != more {
			t.Errorf("limit %d: next cursor %q, want one: %v", tc.limit, page.NextCursor, more)
		}
	}
}

func TestAdminSummary(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h, w := newWorld()
	ws, owner := uuid.New(), uuid.New()
	bob, carol, dave, erin := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	w.create(ws, owner, ownerEmail, "Alice", "Acme")
	q := userlist.NewQueries(pool, fixedClock(t0))
	check := func(step string, want int) {
		t.Helper()
		apply(t, pool, "public", h.events)
		got, err := q.AdminSummary(ctx, ws)
		if err != nil || got != want {
			t.Errorf("%s: %d active Admins (err %v), want %d", step, got, err, want)
		}
	}
	check("the owner alone", 1)

	w.join(ws, owner, bob, "bob@example.com", "Bob", domain.RoleAdmin)
	w.join(ws, owner, carol, "carol@example.com", "Carol", domain.RoleAdmin)
	h.add(domain.MemberSuspended{WorkspaceID: ws, UserID: carol})
	w.invite(ws, owner, dave, "dave@example.com", domain.RoleAdmin)
	w.join(ws, owner, erin, "erin@example.com", "Erin", domain.RoleEditor)
	h.add(domain.RoleChanged{WorkspaceID: ws, UserID: erin, FromRole: "Editor", ToRole: "Admin", ChangedBy: owner})
	other := uuid.New()
	w.create(other, uuid.New(), "x@example.com", "X", "Other")
	check("owner, bob and erin; carol suspended, dave invited", 3)

	h.add(domain.RoleChanged{WorkspaceID: ws, UserID: bob, FromRole: "Admin", ToRole: "Manager", ChangedBy: owner})
	h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: erin})
	check("bob demoted, erin removed", 1)

	h.add(domain.MemberReactivated{WorkspaceID: ws, UserID: carol})
	check("carol reactivated", 2)

	if got, err := q.AdminSummary(ctx, uuid.New()); err != nil || got != 0 {
		t.Errorf("unknown workspace: %d (err %v), want 0", got, err)
	}
}
