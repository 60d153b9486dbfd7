package pgtest_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
)

func TestNewGivesEachTestAFreshMigratedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool1, url1 := pgtest.New(t)
	pool2, url2 := pgtest.New(t)
	if url1 == url2 {
		t.Fatalf("database URLs: got %s twice, want two databases", url1)
	}
	if _, err := pool1.Exec(ctx, `CREATE TABLE only_in_one (x int)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var n int
	if err := pool2.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_one'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("second database: got %d tables named only_in_one (err %v), want none", n, err)
	}
	if err := pool2.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 0 {
		t.Errorf("events table: got %d rows (err %v), want an empty, migrated table", n, err)
	}
}

func TestDatabaseIsDroppedAfterTheTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		pool, _ := pgtest.New(t)
		if err := pool.QueryRow(context.Background(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatalf("current_database: %v", err)
		}
	})
	admin, _ := pgtest.New(t) // any connection to the server will do
	var exists bool
	if err := admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatalf("look up database: %v", err)
	}
	if exists {
		t.Errorf("database %s: got it still there after its test, want it dropped", name)
	}
}

func TestIndexesLeaveTheSchemaOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	for _, s := range []string{"one", `"Two"`} {
		_, err := pool.Exec(ctx, `CREATE SCHEMA `+s+`;
			CREATE TABLE `+s+`.t (a int PRIMARY KEY, b text);
			CREATE INDEX t_b_idx ON `+s+`.t (lower(b)) WHERE b <> 'x';
			CREATE TABLE `+s+`.other (c int PRIMARY KEY)`)
		if err != nil {
			t.Fatal(err)
		}
	}
	one := pgtest.Indexes(t, pool, "one", []string{"t"})
	want := []string{
		"CREATE INDEX t_b_idx ON t USING btree (lower(b)) WHERE (b <> 'x'::text)",
		"CREATE UNIQUE INDEX t_pkey ON t USING btree (a)",
	}
	if !reflect.DeepEqual(one, want) {
		t.Errorf("Indexes(one, t): got %q, want %q", one, want)
	}
	if two := pgtest.Indexes(t, pool, "Two", []string{"t"}); !reflect.DeepEqual(two, want) {
		t.Errorf(`Indexes("Two", t): got %q, want %q`, two, want)
	}
	if none := pgtest.Indexes(t, pool, "one", []string{"missing"}); len(none) != 0 {
		t.Errorf("Indexes of a missing table: got %q, want none", none)
	}
}
