package projections

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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

// DB is what a read model's queries need: a *pgxpool.Pool, a *pgx.Conn or
// a pgx.Tx.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// NeedDB returns db, or panics when it is nil, naming who wanted it: the
// read models' NewQueries take their DB through it.
func NeedDB(who string, db DB) DB {
	if db == nil {
		panic(who + " with a nil DB")
	}
	return db
}

// Args are a statement's arguments, numbered as they are added.
type Args []any

// Add appends v and answers its placeholder ($1, $2, ...).
func (a *Args) Add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// DeleteByKeys is the statement that deletes the rows of table whose
// two-column key (first, second, both uuid) is among the pairs of the
// arrays $1 and $2. It finds each row by its key with LATERAL ... LIMIT 1,
// a probe of the primary key per key: a join plan could scan the whole
// table for a handful of keys. It then deletes the rows found by their
// physical address.
func DeleteByKeys(table, first, second string) string {
	return `DELETE FROM ` + table + ` WHERE ctid = ANY (ARRAY(
		SELECT t.ctid FROM unnest($1::uuid[], $2::uuid[]) AS k(` + first + `, ` + second + `)
		CROSS JOIN LATERAL (
			SELECT ctid FROM ` + table + ` t
			WHERE t.` + first + ` = k.` + first + ` AND t.` + second + ` = k.` + second + `
			LIMIT 1
		) t))`
}

// customPlans makes PostgreSQL plan each statement of the transaction for
// its actual arguments and the tables' current size. A rebuild starts from
// empty tables without statistics: a plan cached then (pgx prepares its
// statements, and PostgreSQL switches to a generic plan after five runs)
// may pick a sequential scan, or an index that holds the key columns but
// not first, and keep it while the table grows, so that every key lookup
// reads a whole workspace. SET LOCAL ends with the transaction.
const customPlans = "SET LOCAL plan_cache_mode = force_custom_plan"

// QueryWithCustomPlans sets customPlans for the rest of tx and runs query
// in the same round trip, handing each row to scan. A projection whose Apply
// first reads the state its batch builds on calls it for that read.
func QueryWithCustomPlans(ctx context.Context, tx pgx.Tx, query string, args []any, scan func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue(customPlans)
	b.Queue(query, args...)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return br.Close()
}

// Timestamp is t, or fallback when t is zero (an event written before the
// field existed); NULL when both are.
func Timestamp(t, fallback time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		t = fallback
	}
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// Int32 is n clamped to an int4 column's range: an event's count beyond it
// (never written by usersd) is stored at the bound rather than stopping a
// projection.
func Int32(n int) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	}
	return int32(n)
}
