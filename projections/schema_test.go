package projections_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

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
