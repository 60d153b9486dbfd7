package projections

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// PGID wraps an id for pgx, which encodes pgtype.UUID directly: a uuid.UUID
// goes through driver.Valuer and text, much slower in the bulk writes of a
// projection.
func PGID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// PGIDs wraps every id of ids, as PGID does.
func PGIDs(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = PGID(id)
	}
	return out
}
