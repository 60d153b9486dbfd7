package projections

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
)

// Schema is a read model's DDL, kept beside its Go code: each read model
// embeds its tables.sql and, if it has secondary indexes, indexes.sql
// (SchemaFiles). Names in it are unqualified:
// CreateTables runs it with the target schema first on the search_path, so
// the same SQL makes the live tables and a rebuild's.
type Schema struct {
	// Tables creates the tables with everything Apply needs to be correct
	// and fast: primary keys, the unique keys its idempotency and ON
	// CONFLICT rely on, every index its own queries read, the constraints
	// and triggers (an append-only table must never be without its
	// triggers). It must create nothing but tables and what they own: a
	// rebuild moves the tables to the live schema and then drops its
	// schema, refusing to if anything is left.
	Tables string
	// Indexes creates the secondary indexes: those the read model's
	// readers need but Apply does not; "" for none. A rebuild inserts the
	// whole history, and keeping such indexes up to date row by row is a
	// large part of its cost, while building one over the full table is a
	// single sort (or, for GIN, a bulk build). So Rebuild creates the
	// tables without them, replays the history, builds them (phase
	// RebuildIndexes), applies the events appended meanwhile, and swaps the
	// tables in with every index in place.
	Indexes string
}

// SchemaFiles reads a read model's Schema from its embedded SQL files:
// tables.sql, and indexes.sql if there is one. It panics if tables.sql is
// missing, which the read model's embed directive would have to leave out.
func SchemaFiles(files fs.FS) Schema {
	tables, err := fs.ReadFile(files, "tables.sql")
	if err != nil {
		panic("projections: a read model's SQL: " + err.Error())
	}
	indexes, err := fs.ReadFile(files, "indexes.sql")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		panic("projections: a read model's SQL: " + err.Error())
	}
	return Schema{Tables: string(tables), Indexes: string(indexes)}
}

// CreateTables runs s.Tables, and s.Indexes too if withIndexes, in tx with
// schema first on the search_path (the rest of the path stays, so that
// what the DDL uses from elsewhere, an extension's operator class or a
// trigger function in public, resolves as usual). The schema must exist.
// The search_path is set for the rest of tx.
func CreateTables(ctx context.Context, tx pgx.Tx, schema string, s Schema, withIndexes bool) error {
	if err := searchSchemaFirst(ctx, tx, schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.Tables); err != nil {
		return fmt.Errorf("create tables in %s: %w", schema, err)
	}
	if withIndexes {
		return CreateIndexes(ctx, tx, schema, s)
	}
	return nil
}

// CreateIndexes runs s.Indexes, if any, in tx with schema first on the
// search_path, on tables that CreateTables made without them.
func CreateIndexes(ctx context.Context, tx pgx.Tx, schema string, s Schema) error {
	if s.Indexes == "" {
		return nil
	}
	if err := searchSchemaFirst(ctx, tx, schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, s.Indexes); err != nil {
		return fmt.Errorf("create indexes in %s: %w", schema, err)
	}
	return nil
}

// searchSchemaFirst puts schema first on tx's search_path, for the rest of
// the transaction.
func searchSchemaFirst(ctx context.Context, tx pgx.Tx, schema string) error {
	_, err := tx.Exec(ctx, `SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), true)`,
		pgx.Identifier{schema}.Sanitize())
	if err != nil {
		return fmt.Errorf("put %s first on the search_path: %w", schema, err)
	}
	return nil
}
