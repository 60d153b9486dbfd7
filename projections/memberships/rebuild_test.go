package memberships_test

import (
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections/memberships"
)

// TestRebuild: a rebuild of the memberships keeps the read models' rebuild
// contract (pgtest.CheckRebuild) over a generated history.
func TestRebuild(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	pgtest.CheckRebuild(t, pool, memberships.New(), newGenerator(4000).next(4000), pgtest.RebuildCheck{})
}
