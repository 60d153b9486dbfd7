package projectionstest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections/projectionstest"
)

// TestWALWindowCountsExactly writes a known number of rows in a known
// number of transactions while another database, with the same table at
// (most likely) the same relfilenode, writes all the time: the window
// counts ours exactly and none of theirs.
func TestWALWindowCountsExactly(t *testing.T) {
	ctx := context.Background()
	pool, url := pgtest.New(t)
	other, _ := pgtest.New(t)
	const ddl = `CREATE TABLE walcost_t (id bigserial PRIMARY KEY, v text, n int);
		CREATE INDEX ON walcost_t (n);
		CREATE TABLE walcost_u (id bigserial PRIMARY KEY, v text)`
	if _, err := pool.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}

	var theirs atomic.Int64
	stopTheirs := projectionstest.Repeat(func() error {
		_, err := other.Exec(ctx, `INSERT INTO walcost_t (v, n) VALUES ('theirs', 1);
			UPDATE walcost_t SET n = n + 1 WHERE id = (SELECT max(id) FROM walcost_t)`)
		if err == nil {
			theirs.Add(1)
		}
		return err
	})
	// Theirs are under way before the window opens and after it closes.
	for theirs.Load() < 3 {
		time.Sleep(time.Millisecond)
	}

	w := projectionstest.StartWAL(t, url)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 { // 5 transactions, 5 rows
		exec(`INSERT INTO walcost_t (v, n) VALUES ('one', $1)`, i)
	}
	exec(`INSERT INTO walcost_t (v, n) SELECT 'ten', g FROM generate_series(1, 10) g`) // 1, 10
	copied, err := pool.CopyFrom(ctx, pgx.Identifier{"walcost_t"}, []string{"v", "n"},
		pgx.CopyFromRows([][]any{{"c", 1}, {"c", 2}, {"c", 3}, {"c", 4}, {"c", 5}, {"c", 6}, {"c", 7}})) // 1, 7 (a multi-insert)
	if err != nil || copied != 7 {
		t.Fatal(copied, err)
	}
	exec(`UPDATE walcost_t SET v = 'hot' WHERE id <= 3`) // 1, 3 updated (HOT: no indexed column)
	exec(`UPDATE walcost_t SET n = 100 WHERE id = 4`)    // 1, 1 updated (not HOT)
	exec(`DELETE FROM walcost_t WHERE id = 5`)           // 1, 1 deleted
	tx, err := pool.Begin(ctx)                           // 1, 2 rows of the other table, one in a subtransaction
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO walcost_u (v) VALUES ('outer')`,
		`SAVEPOINT s`,
		`INSERT INTO walcost_u (v) VALUES ('inner')`,
		`RELEASE SAVEPOINT s`,
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// 1, 1 confirmed speculative insertion
	exec(`INSERT INTO walcost_u (v) VALUES ('speculative') ON CONFLICT DO NOTHING`)
	tx, err = pool.Begin(ctx) // aborted: no commit, no rows
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO walcost_t (v, n) VALUES ('gone', 1), ('gone', 2)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int // read-only: no xid, no WAL
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM walcost_t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	tx, err = pool.Begin(ctx) // 1, 1 locked
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM walcost_t WHERE id = 6 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// Last, an asynchronous commit (as the delivery log's and new keys'
	// are): 1, 1, its commit record maybe not even written when the
	// window closes.
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`SET LOCAL synchronous_commit = off`, `INSERT INTO walcost_t (v, n) VALUES ('async', 1)`} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	cost, err := w.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stopTheirs(); err != nil {
		t.Error(err)
	}

	type counts struct{ Commits, Aborts, Open, Inserted, Updated, HOT, Deleted, Locked, Confirmed int }
	want := counts{Commits: 14, Aborts: 1, Inserted: 26, Updated: 4, HOT: 3, Deleted: 1, Locked: 1, Confirmed: 1}
	got := counts{cost.Commits, cost.Aborts, cost.Open, cost.Inserted, cost.Updated, cost.HOT, cost.Deleted, cost.Locked, cost.Confirmed}
	if got != want {
		t.Errorf("counted %+v, want %+v", got, want)
	}
	for name := range cost.Tables {
		switch name {
		// The catalogs: the server's own upkeep of the database (pruning a
		// catalog page, say) may come in the window.
		case "walcost_t", "walcost_u", projectionstest.TxTable, "(catalog)":
		default:
			t.Errorf("records of %q counted, which the window's database did not write", name)
		}
	}
	tt, tu := cost.Tables["walcost_t"], cost.Tables["walcost_u"]
	if tt == nil || tu == nil {
		t.Fatalf("tables %v: want walcost_t and walcost_u", cost.Tables)
	}
	if tt.Commits != 12 || tt.Inserted != 23 || tt.Updated != 4 || tt.Deleted != 1 || tt.Locked != 1 {
		t.Errorf("walcost_t: %+v, want 12 commits, 23 inserted, 4 updated, 1 deleted, 1 locked", *tt)
	}
	if tu.Commits != 2 || tu.Inserted != 3 || tu.Confirmed != 1 {
		t.Errorf("walcost_u: %+v, want 2 commits, 3 inserted, 1 confirmed", *tu)
	}
	if cost.Bytes <= 0 || cost.Bytes >= cost.ClusterBytes {
		t.Errorf("%d bytes of the database's out of the cluster's %d: want a share, theirs wrote %d times", cost.Bytes, cost.ClusterBytes, theirs.Load())
	}
	var sum int64
	for _, tc := range cost.Tables {
		sum += tc.Bytes
	}
	if sum != cost.Bytes {
		t.Errorf("tables add up to %d bytes, total %d", sum, cost.Bytes)
	}

	parts := cost.ByPart(map[string]string{"walcost_t": "t", "walcost_u": "u"})
	byPart := map[string]projectionstest.PartCost{}
	for _, p := range parts {
		byPart[p.Part] = p
	}
	if byPart["t"].Inserted != 23 || byPart["u"].Inserted != 3 || byPart[projectionstest.TxTable].Records != 15 {
		t.Errorf("parts %+v: want t 23 rows, u 3, 15 transaction records (14 commits, 1 abort)", parts)
	}
}

// TestWALWindowRecycled reads a window whose start the server recycled
// long ago: the error says so instead of counting short.
func TestWALWindowRecycled(t *testing.T) {
	ctx := context.Background()
	_, url := pgtest.New(t)
	w := projectionstest.StartWAL(t, url)
	var end string
	if err := w.Conn().QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&end); err != nil {
		t.Fatal(err)
	}
	var firstKept bool
	if err := w.Conn().QueryRow(ctx, `SELECT min(name) = pg_walfile_name('0/1000000') FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'`).Scan(&firstKept); err != nil {
		t.Fatal(err)
	}
	if firstKept {
		t.Skip("the server still holds its first WAL segment")
	}
	if _, err := w.Read(ctx, "0/1000000", end); !errors.Is(err, projectionstest.ErrWALRecycled) {
		t.Fatalf("read from a recycled start: %v, want ErrWALRecycled", err)
	}
}
