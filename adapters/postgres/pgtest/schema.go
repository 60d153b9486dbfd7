package pgtest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/projectionstest"
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
	return Collect(tb, pool, "pgtest: indexes of "+schema, pgx.RowTo[string], `
		SELECT replace(indexdef, ' ON ' || quote_ident(schemaname) || '.', ' ON ')
		FROM pg_catalog.pg_indexes
		WHERE schemaname = $1 AND tablename = ANY($2)
		ORDER BY tablename, indexname`, schema, tables)
}

// Querier is what Collect reads with: a pool, a connection or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Collect runs a query on db and answers its rows, each made by to
// (pgx.RowTo[string], pgx.RowToStructByPos[T], ...); on an error it fails
// the test with what.
func Collect[T any](tb testing.TB, db Querier, what string, to pgx.RowToFunc[T], sql string, args ...any) []T {
	tb.Helper()
	rows, err := db.Query(context.Background(), sql, args...)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	out, err := pgx.CollectRows(rows, to)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return out
}

// Shape describes the named tables of schema, one line per fact, in a
// fixed order: each column (its position among the live columns, name,
// type, NOT NULL, default or generation expression, collation if not the
// type's, statistics target if set), each constraint, each index (as
// Indexes), each trigger (with its enabled state) and the storage options.
// Names qualified with schema are written without it, so the same tables
// in two schemas describe alike: a test compares the tables the migrations
// made with those a read model's own SQL makes.
func Shape(tb testing.TB, pool *pgxpool.Pool, schema string, tables []string) []string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
		WITH t AS (
			SELECT c.oid, c.relname, c.reloptions
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind IN ('r', 'p'))
		SELECT 1, t.relname, format('%s column %s: %s %s%s%s%s%s', t.relname,
				lpad((row_number() OVER (PARTITION BY t.relname ORDER BY a.attnum))::text, 4, '0'), a.attname,
				format_type(a.atttypid, a.atttypmod),
				CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
				CASE WHEN a.attgenerated <> '' THEN ' generated ' || pg_get_expr(d.adbin, d.adrelid)
					WHEN d.adbin IS NOT NULL THEN ' default ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
				CASE WHEN a.attcollation <> ty.typcollation THEN ' collate ' || co.collname ELSE '' END,
				CASE WHEN a.attstattarget >= 0 THEN ' statistics ' || a.attstattarget ELSE '' END)
		FROM t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
		UNION ALL
		SELECT 2, t.relname, format('%s constraint %s: %s', t.relname, con.conname, pg_get_constraintdef(con.oid))
		FROM t JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid
		UNION ALL
		SELECT 3, t.relname, format('%s index %s', t.relname,
				replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON '))
		FROM t JOIN pg_catalog.pg_index i ON i.indrelid = t.oid
		UNION ALL
		SELECT 4, t.relname, format('%s trigger %s (enabled %s)', t.relname,
				replace(pg_get_triggerdef(tg.oid), ' ON ' || quote_ident($1) || '.', ' ON '), tg.tgenabled)
		FROM t JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = t.oid AND NOT tg.tgisinternal
		UNION ALL
		SELECT 5, t.relname, format('%s options %s', t.relname, array_to_string(t.reloptions, ', '))
		FROM t WHERE t.reloptions IS NOT NULL
		ORDER BY 2, 1, 3`, schema, tables)
	if err != nil {
		tb.Fatalf("pgtest: shape of %s: %v", schema, err)
	}
	var out []string
	var kind int
	var table, line string
	_, err = pgx.ForEachRow(rows, []any{&kind, &table, &line}, func() error {
		out = append(out, line)
		return nil
	})
	if err != nil {
		tb.Fatalf("pgtest: shape of %s: %v", schema, err)
	}
	return out
}

// CreateTables creates schema and, in it, the tables of a read model's
// Schema with every index, as projections.CreateTables makes them for a
// rebuild: tables of a test's own beside the live ones.
func CreateTables(tb testing.TB, pool *pgxpool.Pool, schema string, s projections.Schema) {
	tb.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		return projections.CreateTables(ctx, tx, schema, s, true)
	})
	if err != nil {
		tb.Fatalf("pgtest: create tables in %s: %v", schema, err)
	}
}

// Apply applies each batch to p in a transaction of its own with schema
// first on the search_path, as a runner or a rebuild does, and fails the
// test on an error.
func Apply(tb testing.TB, pool *pgxpool.Pool, schema string, p projections.Projection, batches ...[]domain.RecordedEvent) {
	tb.Helper()
	ctx := context.Background()
	for _, b := range batches {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			path := pgx.Identifier{schema}.Sanitize() + ", public"
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+path); err != nil {
				return err
			}
			return p.Apply(ctx, tx, b)
		})
		if err != nil {
			tb.Fatalf("pgtest: apply %d events to %s in %s: %v", len(b), p.Name(), schema, err)
		}
	}
}

// Dump renders the rows of the named tables of schema as JSON, a line per
// row in a fixed order, so that two read models built differently (batch
// sizes, replays, a rebuild) compare as text.
func Dump(tb testing.TB, pool *pgxpool.Pool, schema string, tables []string) string {
	tb.Helper()
	var sb strings.Builder
	for _, table := range tables {
		lines := Collect(tb, pool, "pgtest: dump "+schema+"."+table, pgx.RowTo[string],
			`SELECT to_jsonb(t)::text FROM `+pgx.Identifier{schema, table}.Sanitize()+` t ORDER BY 1`)
		sb.WriteString(table + ":\n" + strings.Join(lines, "\n") + "\n")
	}
	return sb.String()
}

// RebuildCheck tunes CheckRebuild. The zero value is usable.
type RebuildCheck struct {
	// LiveBatch is the batch size the live tables are built with before
	// the rebuild (default 150); RebuildBatch the rebuild's (default 500).
	LiveBatch, RebuildBatch int
	// During, if set, runs on the rebuild's schema after each batch of the
	// replay (phase RebuildReplay) and as the swap starts (RebuildSwap),
	// for what a read model checks beyond this contract.
	During func(phase projections.RebuildPhase, schema string)
}

// CheckRebuild is the contract every read model's rebuild keeps. It builds
// p's live tables from events batch by batch, as the runner does, then has
// projections.Rebuild replay the events into fresh tables and swap them in,
// and checks that
//   - the tables swapped in hold the same rows (Dump);
//   - the rebuild went through an index phase exactly when p has secondary
//     indexes (Schema.Indexes);
//   - during the replay the fresh tables had only the indexes Schema.Tables
//     makes, and before the swap every live index, as after it.
//
// It answers the rebuild's result.
func CheckRebuild(tb testing.TB, pool *pgxpool.Pool, p projections.ReadModel, events []domain.RecordedEvent, c RebuildCheck) projections.RebuildResult {
	tb.Helper()
	c.LiveBatch = positive.Or(c.LiveBatch, 150)
	c.RebuildBatch = positive.Or(c.RebuildBatch, 500)
	for i := 0; i < len(events); i += c.LiveBatch {
		Apply(tb, pool, "public", p, events[i:min(i+c.LiveBatch, len(events))])
	}
	want := Dump(tb, pool, "public", p.Tables())
	live := Indexes(tb, pool, "public", p.Tables())
	keysOnly := p.Schema()
	keysOnly.Indexes = ""
	CreateTables(tb, pool, "pgtest_keys_only", keysOnly)
	keys := Indexes(tb, pool, "pgtest_keys_only", p.Tables())
	deferred := p.Schema().Indexes != ""
	if !deferred && !slices.Equal(keys, live) {
		tb.Fatalf("pgtest: %s has no secondary indexes, yet its live indexes %q are not those of its tables %q", p.Name(), live, keys)
	}

	schema := projections.RebuildSchema(p.Name())
	var phases []projections.RebuildPhase
	var replaying [][]string
	var atSwap []string
	res, err := projections.Rebuild(context.Background(), pool, p, projections.SliceSource(events), projections.RebuildOptions{
		BatchSize: c.RebuildBatch,
		Progress: func(int, domain.Position) {
			if len(phases) == 1 {
				replaying = append(replaying, Indexes(tb, pool, schema, p.Tables()))
				if c.During != nil {
					c.During(projections.RebuildReplay, schema)
				}
			}
		},
		Phase: func(ph projections.RebuildPhase) {
			phases = append(phases, ph)
			if ph == projections.RebuildSwap {
				atSwap = Indexes(tb, pool, schema, p.Tables())
				if c.During != nil {
					c.During(ph, schema)
				}
			}
		},
	})
	if err != nil {
		tb.Fatalf("pgtest: rebuild %s: %v", p.Name(), err)
	}
	if res.Applied != len(events) || (res.IndexDuration > 0) != deferred {
		tb.Errorf("pgtest: rebuild %s: got %+v, want %d applied, an index build: %t", p.Name(), res, len(events), deferred)
	}
	if got := Dump(tb, pool, "public", p.Tables()); got != want {
		tb.Errorf("pgtest: %s's tables after the rebuild differ from the live ones:\n%s\nwant\n%s", p.Name(), got, want)
	}
	wantPhases := []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildSwap}
	if deferred {
		wantPhases = []projections.RebuildPhase{projections.RebuildReplay, projections.RebuildIndexes, projections.RebuildCatchUp, projections.RebuildSwap}
	}
	if !slices.Equal(phases, wantPhases) {
		tb.Errorf("pgtest: rebuild %s: phases %q, want %q", p.Name(), phases, wantPhases)
	}
	if len(replaying) == 0 {
		tb.Errorf("pgtest: rebuild %s: no progress during the replay", p.Name())
	}
	for i, got := range replaying {
		if !slices.Equal(got, keys) {
			tb.Errorf("pgtest: rebuild %s: indexes after batch %d of the replay: got %q, want only those of the tables %q", p.Name(), i+1, got, keys)
			break
		}
	}
	if !slices.Equal(atSwap, live) {
		tb.Errorf("pgtest: rebuild %s: indexes before the swap: got %q, want the live ones %q", p.Name(), atSwap, live)
	}
	if got := Indexes(tb, pool, "public", p.Tables()); !slices.Equal(got, live) {
		tb.Errorf("pgtest: rebuild %s: indexes after the swap: got %q, want %q", p.Name(), got, live)
	}
	return res
}

// Batching is one way a runner may hand a read model a history: Split cuts
// the events into the batches Apply gets. Name is also a schema name.
type Batching struct {
	Name  string
	Split func(events []domain.RecordedEvent) [][]domain.RecordedEvent
}

// Batchings are the ways a history may reach Apply: whole, one event at a
// time, twice, replayed after the fact (every event again alone, newest
// first), in overlapping batches. An idempotent read model ends with the
// same rows from each. The first is "public": the live tables.
var Batchings = []Batching{
	{"public", func(ev []domain.RecordedEvent) [][]domain.RecordedEvent { return [][]domain.RecordedEvent{ev} }},
	{"one_per_batch", func(ev []domain.RecordedEvent) [][]domain.RecordedEvent {
		var out [][]domain.RecordedEvent
		for i := range ev {
			out = append(out, ev[i:i+1])
		}
		return out
	}},
	{"twice", func(ev []domain.RecordedEvent) [][]domain.RecordedEvent { return [][]domain.RecordedEvent{ev, ev} }},
	{"replayed_backwards", func(ev []domain.RecordedEvent) [][]domain.RecordedEvent {
		// Each event alone after the whole history is a replay of
		// something older than the rows.
		out := [][]domain.RecordedEvent{ev}
		for i := len(ev) - 1; i >= 0; i-- {
			out = append(out, ev[i:i+1])
		}
		return out
	}},
	{"overlapping", func(ev []domain.RecordedEvent) [][]domain.RecordedEvent {
		// Batches of three, each replaying the last event of the one
		// before, then the whole history once more.
		var out [][]domain.RecordedEvent
		for i := 0; i < len(ev); i += 2 {
			out = append(out, ev[i:min(i+3, len(ev))])
		}
		return append(out, ev)
	}},
}

// CheckBatchings is the contract that a read model's tables do not depend
// on how a runner batches its history. It applies events to p's live
// tables in one batch, then each of projectionstest.Batchings to fresh
// tables in a schema of the batching's name, times over (each time the
// whole batching again: a replay must change nothing), and fails tb where
// a schema's tables (Dump) differ from the live ones.
func CheckBatchings(tb testing.TB, pool *pgxpool.Pool, p projections.ReadModel, events []domain.RecordedEvent, times int) {
	tb.Helper()
	Apply(tb, pool, "public", p, events)
	want := Dump(tb, pool, "public", p.Tables())
	for name, b := range projectionstest.Batchings(events) {
		CreateTables(tb, pool, name, p.Schema())
		for range times {
			Apply(tb, pool, name, p, b...)
		}
		if got := Dump(tb, pool, name, p.Tables()); got != want {
			tb.Errorf("pgtest: %s, batching %s: tables differ from one batch:\n%s\nwant\n%s", p.Name(), name, got, want)
		}
	}
}

// ApplyInFreshSchema creates p's tables in the new schema with p's own SQL
// (CreateTables), applies events there in one batch, and checks that the
// live tables (in public) stayed empty: Apply followed the search_path.
// The test then reads schema with its own queries.
func ApplyInFreshSchema(tb testing.TB, pool *pgxpool.Pool, schema string, p projections.ReadModel, events []domain.RecordedEvent) {
	tb.Helper()
	CreateTables(tb, pool, schema, p.Schema())
	Apply(tb, pool, schema, p, events)
	for _, table := range p.Tables() {
		projectionstest.WantLiveEmpty(tb, pool, table)
	}
}

// CheckIdentity fails tb unless p's name, its checkpoint key, is name and
// its tables are tables, in that order: neither may change under the
// rows and the checkpoint a deployment already has.
func CheckIdentity(tb testing.TB, p projections.ReadModel, name string, tables []string) {
	tb.Helper()
	if p.Name() != name {
		tb.Errorf("Name() = %q, want %s (the checkpoint key must not change)", p.Name(), name)
	}
	if got := p.Tables(); !slices.Equal(got, tables) {
		tb.Errorf("Tables() = %v, want %v", got, tables)
	}
}

// ApplyInEveryBatching applies events to p as each of Batchings cuts them,
// each in the schema of its name ("public": the live tables; the others
// made fresh by CreateTables), calls check with each schema once its
// events are in, and fails tb unless every batching leaves the same rows
// (Dump) as the first.
func ApplyInEveryBatching(tb testing.TB, pool *pgxpool.Pool, p projections.ReadModel, events []domain.RecordedEvent, check func(schema string)) {
	tb.Helper()
	var dumps []string
	for _, m := range Batchings {
		if m.Name != "public" {
			CreateTables(tb, pool, m.Name, p.Schema())
		}
		Apply(tb, pool, m.Name, p, m.Split(events)...)
		dumps = append(dumps, Dump(tb, pool, m.Name, p.Tables()))
		check(m.Name)
	}
	for i := 1; i < len(dumps); i++ {
		if dumps[i] != dumps[0] {
			tb.Errorf("applying as %q gives other tables than as %q:\n%s\nwant\n%s", Batchings[i].Name, Batchings[0].Name, dumps[i], dumps[0])
		}
	}
}
