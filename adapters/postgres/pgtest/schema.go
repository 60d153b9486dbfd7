package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Indexes describes the indexes on the named tables of schema, sorted by
// table and index name: each is its definition as pg_indexes gives it,
// with the tables' schema left out ("CREATE INDEX t_idx ON t USING btree
// (a)"). The indexes of the same tables in two schemas, such as the live
// tables and the ones a rebuild made, then compare equal. Names the
// definition qualifies with another schema (an operator class, a function)
// are kept.
func Indexes(tb testing.TB, pool *pgxpool.Pool, schema string, tables []string) []string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT replace(indexdef, ' ON ' || quote_ident(schemaname) || '.', ' ON ')
		FROM pg_catalog.pg_indexes
		WHERE schemaname = $1 AND tablename = ANY($2)
		ORDER BY tablename, indexname`, schema, tables)
	if err != nil {
		tb.Fatalf("pgtest: indexes of %s: %v", schema, err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("pgtest: indexes of %s: %v", schema, err)
	}
	return defs
}
