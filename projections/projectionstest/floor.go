package projectionstest

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Floor is the raw baseline of the API's benchmarks: the very rows a
// workload wrote to the events table, read back and inserted by
// concurrent workers into a plain table of the same columns with only a
// bigserial key (CreateFloorTable), one autocommitted INSERT (INSERT +
// COMMIT) of a few rows at a time.
type Floor struct {
	pool  *pgxpool.Pool
	table string
	where string
	// since is the events' position up to which rows went to the floor.
	since int64
}

// NewFloor creates the floor's table on pool and starts it at the events
// table's last position: Insert takes the rows appended after. where, if
// not empty, is an SQL condition on the events that picks the rows (e.g.
// "type IN ('AccountRegistered', 'UserInvited')").
func NewFloor(tb testing.TB, pool *pgxpool.Pool, table, where string) *Floor {
	tb.Helper()
	CreateFloorTable(tb, pool, table)
	f := &Floor{pool: pool, table: table, where: where}
	f.Skip(tb)
	return f
}

// Skip moves the floor past the rows appended so far: Insert will not
// take them.
func (f *Floor) Skip(tb testing.TB) {
	tb.Helper()
	if err := f.pool.QueryRow(context.Background(), `SELECT coalesce(max(position), 0) FROM events`).Scan(&f.since); err != nil {
		tb.Fatal(err)
	}
}

type floorRow struct {
	eventID        [16]byte
	stream, typ    string
	revision       int64
	data, metadata []byte
}

// Insert inserts the rows appended since the last call (or NewFloor,
// Skip) from workers goroutines, perInsert rows (taken in position order)
// per autocommitted INSERT, and answers the time the inserts took and the
// rows inserted.
func (f *Floor) Insert(tb testing.TB, workers, perInsert int) (time.Duration, int) {
	tb.Helper()
	ctx := context.Background()
	cond := "position > $1"
	if f.where != "" {
		cond += " AND (" + f.where + ")"
	}
	rows, err := f.pool.Query(ctx, `SELECT event_id, stream_id, revision, type, data, metadata
		FROM events WHERE `+cond+` ORDER BY position`, f.since)
	if err != nil {
		tb.Fatal(err)
	}
	var all []floorRow
	for rows.Next() {
		var r floorRow
		if err := rows.Scan(&r.eventID, &r.stream, &r.revision, &r.typ, &r.data, &r.metadata); err != nil {
			tb.Fatal(err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	// The last rows the condition left out are passed too.
	f.Skip(tb)

	var taken atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(taken.Add(int64(perInsert)) - int64(perInsert))
				if i >= len(all) {
					return
				}
				chunk := all[i:min(i+perInsert, len(all))]
				sql := `INSERT INTO ` + f.table + ` (event_id, stream_id, revision, type, data, metadata) VALUES `
				args := make([]any, 0, 6*len(chunk))
				for j, r := range chunk {
					if j > 0 {
						sql += ", "
					}
					n := len(args)
					sql += "($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ", $" + strconv.Itoa(n+3) + ", $" + strconv.Itoa(n+4) + ", $" + strconv.Itoa(n+5) + ", $" + strconv.Itoa(n+6) + ")"
					args = append(args, r.eventID, r.stream, r.revision, r.typ, r.data, r.metadata)
				}
				if _, err := f.pool.Exec(ctx, sql, args...); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		tb.Fatalf("floor insert: %v", *err)
	}
	return d, len(all)
}
