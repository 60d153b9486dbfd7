// Package migrations holds the numbered goose SQL migrations of usersd's
// PostgreSQL database, embedded so the binary and the tests carry them. A
// shipped migration is never edited: change the schema with a new file.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
