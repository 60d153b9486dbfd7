package projections_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

// readModels are the read models usersd keeps (cmd/usersd allProjections).
func readModels() []projections.ReadModel {
	return []projections.ReadModel{userlist.New(), memberships.New(), audit.New(), history.New()}
}

// TestEveryEventIsHandled: every read model declares, for every registered
// event type, whether it applies or ignores it. A new event type fails here,
// naming it and each read model that must decide, before any database sees
// it. (Each read model's own test checks that its code has a case for what
// it applies.)
func TestEveryEventIsHandled(t *testing.T) {
	t.Parallel()
	var problems []string
	for _, p := range readModels() {
		if err := p.Handling().Check(); err != nil {
			problems = append(problems, p.Name()+": "+err.Error())
		}
	}
	if len(problems) > 0 {
		t.Errorf("read models do not declare every event type:\n  %s", strings.Join(problems, "\n  "))
	}
}

func TestHandlingCheck(t *testing.T) {
	t.Parallel()
	all := func(except ...string) []domain.Event {
		var out []domain.Event
		for _, typ := range domain.EventTypes() {
			if !slices.Contains(except, typ.Name) {
				out = append(out, typ.Zero())
			}
		}
		return out
	}
	cases := []struct {
		name string
		h    projections.Handling
		want string // "" for no error
	}{
		{"all applied", projections.Handling{Applies: projections.EventsOf(all()...)}, ""},
		{"one ignored", projections.Handling{
			Applies: projections.EventsOf(all("UserLoggedIn")...),
			Ignores: projections.EventsOf(domain.UserLoggedIn{}),
		}, ""},
		{"two missing", projections.Handling{Applies: projections.EventsOf(all("UserLoggedIn", "RoleChanged")...)},
			"neither applies nor ignores RoleChanged, UserLoggedIn"},
		{"declared twice", projections.Handling{
			Applies: projections.EventsOf(all()...),
			Ignores: projections.EventsOf(domain.AccountRegistered{}),
		}, "both applies and ignores AccountRegistered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.h.Check()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Check: got %v, want nil", err)
			case c.want != "" && (err == nil || err.Error() != c.want):
				t.Errorf("Check: got %v, want %q", err, c.want)
			}
		})
	}
	h := projections.Handling{Applies: projections.EventsOf(domain.RoleChanged{}), Ignores: projections.EventsOf(domain.UserLoggedIn{})}
	if ok, err := h.Applied(domain.RoleChanged{}); !ok || err != nil {
		t.Errorf("Applied(RoleChanged): got %t, %v, want true, nil", ok, err)
	}
	if ok, err := h.Applied(domain.UserLoggedIn{}); ok || err != nil {
		t.Errorf("Applied(UserLoggedIn): got %t, %v, want false, nil", ok, err)
	}
	if ok, err := h.Applied(domain.MemberRemoved{}); ok || err == nil || !strings.Contains(err.Error(), "MemberRemoved") {
		t.Errorf("Applied(MemberRemoved): got %t, %v, want false and an error naming it", ok, err)
	}
}

// TestSchemasMatchMigrations: the live tables the migrations made are the
// tables each read model's own SQL (Schema) makes, which a rebuild swaps
// in: the same columns in the same order with the same types, defaults and
// collations, the same constraints, indexes, triggers and storage options.
// A change to a read model's SQL without a migration that makes the live
// tables the same, or the other way round, fails here.
func TestSchemasMatchMigrations(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	for _, p := range readModels() {
		fresh := "fresh_" + p.Name()
		pgtest.CreateTables(t, pool, fresh, p.Schema())
		live, made := pgtest.Shape(t, pool, "public", p.Tables()), pgtest.Shape(t, pool, fresh, p.Tables())
		if len(live) == 0 {
			t.Errorf("%s: no live tables %v", p.Name(), p.Tables())
		}
		if !slices.Equal(live, made) {
			t.Errorf("%s: the live tables differ from those its Schema makes:\n%s", p.Name(), diffLines(live, made))
		}
	}
}

// diffLines lists the lines only in live (-) and only in made (+).
func diffLines(live, made []string) string {
	var b strings.Builder
	for _, l := range live {
		if !slices.Contains(made, l) {
			b.WriteString("  - " + l + "\n")
		}
	}
	for _, l := range made {
		if !slices.Contains(live, l) {
			b.WriteString("  + " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "  (the same lines in another order)"
	}
	return b.String()
}
