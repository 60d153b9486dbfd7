package projectionstest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A WAL window measures what one database writes between Start and Stop
// from the write-ahead log itself, through pg_walinspect (a contrib
// extension of PostgreSQL 15; creating it needs a superuser, as the tests'
// admin URL is). The cumulative statistics (pg_stat_database) would not
// do: an idle backend flushes its counters up to ten seconds late, and
// the WAL position is the cluster's, which other databases write to at
// the same time. A record belongs to the measured database when one of
// its block references names it (rel spc/DBOID/relfilenode) or when its
// transaction wrote such a record (a commit carries only its xid).
//
// While the window is open it holds a temporary physical replication
// slot, so that no checkpoint recycles the WAL it will read; should the
// slot be refused (no free slot), a recycled segment is reported as
// ErrWALRecycled rather than as a short count.
type WALWindow struct {
	conn  *pgx.Conn
	dbOID uint32
	start string
	slot  bool
}

// ErrWALRecycled reports that part of the window's WAL was removed before
// it could be read: the counts would be short, so none are given.
var ErrWALRecycled = errors.New("WAL of the window was recycled before it was read (hold it with a replication slot, raise wal_keep_size, or measure a shorter window)")

// StartWAL opens a window on the database at url, which must be a
// superuser's connection (pgtest's admin URL). The window's own
// connection is closed by Stop, or when tb ends.
func StartWAL(tb testing.TB, url string) *WALWindow {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("wal window: %v", err)
	}
	w := &WALWindow{conn: conn}
	tb.Cleanup(w.close)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		tb.Fatalf("wal window: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT oid FROM pg_database WHERE datname = current_database()").Scan(&w.dbOID); err != nil {
		tb.Fatalf("wal window: %v", err)
	}
	// Temporary: dropped with the session, even if the test dies.
	slot := fmt.Sprintf("usersd_walcost_%d", conn.PgConn().PID())
	_, err = conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true, true)", slot)
	w.slot = err == nil
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&w.start); err != nil {
		tb.Fatalf("wal window: %v", err)
	}
	return w
}

func (w *WALWindow) close() {
	if w.conn != nil {
		_ = w.conn.Close(context.Background())
		w.conn = nil
	}
}

// Stop closes the window and reads what the database wrote in it. Call it
// once every write to be counted has committed.
func (w *WALWindow) Stop(ctx context.Context) (WALCost, error) {
	defer w.close()
	var end string
	if err := w.conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&end); err != nil {
		return WALCost{}, err
	}
	// The insert position, not pg_current_wal_lsn (the write position):
	// an asynchronous commit (the delivery log's, a new key's, a
	// projection's) is inserted but maybe not written yet, and would be
	// left out. pg_walinspect reads only flushed WAL: the WAL writer
	// flushes within wal_writer_delay.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var flushed bool
		if err := w.conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", end).Scan(&flushed); err != nil {
			return WALCost{}, err
		}
		if flushed {
			break
		}
		if time.Now().After(deadline) {
			return WALCost{}, fmt.Errorf("wal window: WAL up to %s not flushed within 10s", end)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w.read(ctx, w.start, end)
}

// WALCost is what one database wrote to the WAL in a window.
type WALCost struct {
	// Commits and Aborts count the transactions that wrote to the
	// database (read-only ones write no WAL and have no xid); Open those
	// still in progress when the window closed, whose rows are in no
	// count below.
	Commits, Aborts, Open int
	// Rows of committed transactions.
	Rows
	// Records and Bytes count every record attributed to the database
	// (committed or not, vacuum and pruning too), FPIBytes the full-page
	// images among the bytes.
	Records         int
	Bytes, FPIBytes int64
	// ClusterBytes is the WAL the whole cluster wrote in the window,
	// other databases' included.
	ClusterBytes int64
	// Tables breaks the above down by table: an index's or TOAST
	// relation's records count for its table, a sequence's for the table
	// owning it. Records of no relation (commit records) are under
	// "(transaction)"; relations gone by the end of the window are under
	// "(relfilenode N)", the system catalogs under "(catalog)".
	Tables map[string]*TableCost
	// txTables lists, for each committed transaction, the tables it
	// wrote: ByPart counts a transaction once per part.
	txTables [][]string
}

// TableCost is one table's share of a WALCost. Commits counts the
// committed transactions that wrote to it.
type TableCost struct {
	Commits int
	Rows
	Records         int
	Bytes, FPIBytes int64
}

// Rows counts heap tuples inserted (a multi-insert's each, less
// speculative inserts that lost their conflict), updated (HOT or not),
// HOT-updated, deleted and locked (SELECT ... FOR UPDATE, ON CONFLICT DO
// UPDATE). Confirmed counts the speculative insertions confirmed (an
// INSERT ... ON CONFLICT that inserted): each a record beside its row's
// insert.
type Rows struct {
	Inserted, Updated, HOT, Deleted, Locked int
	Confirmed                               int
}

func (r *Rows) add(o Rows) {
	r.Inserted += o.Inserted
	r.Updated += o.Updated
	r.HOT += o.HOT
	r.Deleted += o.Deleted
	r.Locked += o.Locked
	r.Confirmed += o.Confirmed
}

// note counts one record of length bytes, fpi of them full-page images.
func (t *TableCost) note(length, fpi int64) {
	t.Records++
	t.Bytes += length
	t.FPIBytes += fpi
}

func (t *TableCost) add(o *TableCost) {
	t.Commits += o.Commits
	t.Rows.add(o.Rows)
	t.Records += o.Records
	t.Bytes += o.Bytes
	t.FPIBytes += o.FPIBytes
}

// TxTable names the records of no relation (commit and abort records).
const TxTable = "(transaction)"

// PartCost is the share of a group of tables (a "part" of the pipeline).
// Commits counts the committed transactions that wrote to any of its
// tables, so the parts' commits may add up to more than the total.
type PartCost struct {
	Part   string
	Tables []string
	TableCost
}

// ByPart groups the tables into parts by parts (table name → part);
// tables it does not name form the part "other", the transaction records
// the part TxTable. Parts come out by bytes, largest first.
func (c WALCost) ByPart(parts map[string]string) []PartCost {
	partOf := func(table string) string {
		part, ok := parts[table]
		switch {
		case ok:
		case table == TxTable:
			part = TxTable
		default:
			part = "other"
		}
		return part
	}
	byName := map[string]*PartCost{}
	for table, tc := range c.Tables {
		part := partOf(table)
		p := byName[part]
		if p == nil {
			p = &PartCost{Part: part}
			byName[part] = p
		}
		p.Tables = append(p.Tables, table)
		p.add(tc)
		p.Commits = 0 // counted below, once per transaction
	}
	for _, tables := range c.txTables {
		counted := map[string]bool{}
		for _, t := range tables {
			part := partOf(t)
			if !counted[part] {
				counted[part] = true
				byName[part].Commits++
			}
		}
	}
	out := make([]PartCost, 0, len(byName))
	for _, p := range byName {
		sort.Strings(p.Tables)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Part < out[j].Part
	})
	return out
}

// pendingTx holds a transaction's row counts until its commit or abort
// record says whether they stand.
type pendingTx struct {
	rows   map[string]*TableCost // by table: row counts only
	tables map[string]bool
}

func (w *WALWindow) read(ctx context.Context, start, end string) (WALCost, error) {
	tables, err := w.relations(ctx)
	if err != nil {
		return WALCost{}, err
	}
	if err := w.checkRetained(ctx, start); err != nil {
		return WALCost{}, err
	}
	cost := WALCost{Tables: map[string]*TableCost{}}
	if err := w.conn.QueryRow(ctx, "SELECT $2::pg_lsn - $1::pg_lsn", start, end).Scan(&cost.ClusterBytes); err != nil {
		return WALCost{}, err
	}
	table := func(name string) *TableCost {
		t := cost.Tables[name]
		if t == nil {
			t = &TableCost{}
			cost.Tables[name] = t
		}
		return t
	}
	total := func(length, fpi int64) {
		cost.Records++
		cost.Bytes += length
		cost.FPIBytes += fpi
	}
	dbMark := "/" + strconv.FormatUint(uint64(w.dbOID), 10) + "/"
	pending := map[uint32]*pendingTx{}
	// Bytes of records that name no relation of the database, by xid:
	// they are the database's if the transaction turns out to be.
	unnamed := map[uint32]*TableCost{}
	ours := map[uint32]bool{}
	tx := func(xid uint32) *pendingTx {
		p := pending[xid]
		if p == nil {
			p = &pendingTx{rows: map[string]*TableCost{}, tables: map[string]bool{}}
			pending[xid] = p
		}
		return p
	}
	finish := func(xids []uint32, committed bool) {
		touched := map[string]bool{}
		for _, x := range xids {
			p := pending[x]
			if p == nil {
				continue
			}
			delete(pending, x)
			if !committed {
				continue
			}
			for name, r := range p.rows {
				table(name).add(r)
				cost.Rows.add(r.Rows)
			}
			for name := range p.tables {
				touched[name] = true
			}
		}
		names := make([]string, 0, len(touched))
		for name := range touched {
			table(name).Commits++
			names = append(names, name)
		}
		if len(names) > 0 {
			cost.txTables = append(cost.txTables, names)
		}
	}

	rows, err := w.conn.Query(ctx, `
		SELECT xid::text::bigint, resource_manager, record_type, record_length, fpi_length,
		       CASE WHEN resource_manager IN ('Transaction', 'Heap', 'Heap2') THEN description ELSE '' END,
		       coalesce(block_ref, '')
		  FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)`, start, end)
	if err != nil {
		return WALCost{}, w.readErr(err)
	}
	defer rows.Close()
	var (
		xid64           int64
		rmgr, typ, desc string
		length, fpi     int64
		blockRef        string
	)
	for rows.Next() {
		if err := rows.Scan(&xid64, &rmgr, &typ, &length, &fpi, &desc, &blockRef); err != nil {
			return WALCost{}, err
		}
		xid := uint32(xid64)
		name, ok := ourRelation(blockRef, dbMark, tables)
		if !ok {
			if xid == 0 {
				continue
			}
			committed := rmgr == "Transaction" && strings.HasPrefix(typ, "COMMIT")
			aborted := rmgr == "Transaction" && strings.HasPrefix(typ, "ABORT")
			if committed || aborted {
				xids := append([]uint32{xid}, subxacts(desc)...)
				isOurs := false
				for _, x := range xids {
					isOurs = isOurs || ours[x]
				}
				if !isOurs {
					// Another database's, or one of ours that wrote only
					// shared catalogs: neither is counted.
					continue
				}
				table(TxTable).note(length, fpi)
				total(length, fpi)
				if committed {
					cost.Commits++
				} else {
					cost.Aborts++
				}
				finish(xids, committed)
				continue
			}
			u := unnamed[xid]
			if u == nil {
				u = &TableCost{}
				unnamed[xid] = u
			}
			u.note(length, fpi)
			continue
		}
		table(name).note(length, fpi)
		total(length, fpi)
		if xid == 0 {
			continue
		}
		ours[xid] = true
		p := tx(xid)
		p.tables[name] = true
		r := p.rows[name]
		if r == nil {
			r = &TableCost{}
			p.rows[name] = r
		}
		countRows(r, rmgr, typ, desc)
	}
	if err := rows.Err(); err != nil {
		return WALCost{}, w.readErr(err)
	}
	// Records of our transactions that named no relation of ours (a
	// shared catalog's, an assignment record) before we knew them ours.
	for xid, u := range unnamed {
		if !ours[xid] {
			continue
		}
		table(TxTable).add(u)
		cost.Records += u.Records
		cost.Bytes += u.Bytes
		cost.FPIBytes += u.FPIBytes
	}
	cost.Open = len(pending)
	return cost, nil
}

// ourRelation answers the table a record's first block reference into
// the database belongs to.
func ourRelation(blockRef, dbMark string, tables map[uint32]string) (string, bool) {
	i := strings.Index(blockRef, dbMark)
	if i < 0 {
		return "", false
	}
	rest := blockRef[i+len(dbMark):]
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	fn, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return "", false
	}
	if name, ok := tables[uint32(fn)]; ok {
		return name, true
	}
	return "(relfilenode " + rest + ")", true
}

// countRows counts the rows a heap record writes (PostgreSQL 15's
// descriptions: "off 3 flags 0x00", "2 tuples flags 0x02").
func countRows(r *TableCost, rmgr, typ, desc string) {
	typ = strings.TrimSuffix(typ, "+INIT")
	switch rmgr + " " + typ {
	case "Heap INSERT":
		r.Inserted++
	case "Heap2 MULTI_INSERT":
		if n, err := strconv.Atoi(strings.Fields(desc + " 0")[0]); err == nil {
			r.Inserted += n
		}
	case "Heap UPDATE":
		r.Updated++
	case "Heap HOT_UPDATE":
		r.Updated++
		r.HOT++
	case "Heap DELETE":
		// A speculative insertion that lost to a concurrent one (ON
		// CONFLICT) is "super-deleted" (XLH_DELETE_IS_SUPER): no row.
		if f, ok := descFlags(desc); ok && f&0x08 != 0 {
			r.Inserted--
		} else {
			r.Deleted++
		}
	case "Heap LOCK", "Heap2 LOCK_UPDATED":
		r.Locked++
	case "Heap HEAP_CONFIRM":
		r.Confirmed++
	}
}

func descFlags(desc string) (uint64, bool) {
	f := strings.Fields(desc)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "flags" {
			v, err := strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 8)
			return v, err == nil
		}
	}
	return 0, false
}

// subxacts answers the subtransactions a commit or abort record lists
// ("...; subxacts: 60257 60258").
func subxacts(desc string) []uint32 {
	i := strings.Index(desc, "subxacts:")
	if i < 0 {
		return nil
	}
	rest := desc[i+len("subxacts:"):]
	if j := strings.IndexByte(rest, ';'); j >= 0 {
		rest = rest[:j]
	}
	var out []uint32
	for _, f := range strings.Fields(rest) {
		if n, err := strconv.ParseUint(f, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}

// relations maps each relfilenode of the database to the table it
// belongs to: an index to its table, a TOAST relation (and its index) to
// the table it holds values of, an owned sequence to its table. It is
// read at the window's end; a relation rewritten in the window (TRUNCATE,
// VACUUM FULL) has its old relfilenode under "(relfilenode N)".
func (w *WALWindow) relations(ctx context.Context) (map[uint32]string, error) {
	rows, err := w.conn.Query(ctx, `
		SELECT c.oid::bigint, pg_relation_filenode(c.oid)::bigint, c.relname, n.nspname,
		       coalesce(i.indrelid, t.oid, d.refobjid, 0)::bigint
		  FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  LEFT JOIN pg_index i ON i.indexrelid = c.oid
		  LEFT JOIN pg_class t ON c.relkind = 't' AND t.reltoastrelid = c.oid
		  LEFT JOIN pg_depend d ON c.relkind = 'S' AND d.classid = 'pg_class'::regclass
		        AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
		 WHERE pg_relation_filenode(c.oid) IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	type rel struct {
		filenode    uint32
		name, nsp   string
		owner       int64
		isCatalogue bool
	}
	byOID := map[int64]rel{}
	for rows.Next() {
		var (
			oid, fn, owner int64
			name, nsp      string
		)
		if err := rows.Scan(&oid, &fn, &name, &nsp, &owner); err != nil {
			return nil, err
		}
		byOID[oid] = rel{filenode: uint32(fn), name: name, nsp: nsp, owner: owner,
			isCatalogue: nsp == "pg_catalog" || nsp == "information_schema"}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make(map[uint32]string, len(byOID))
	for oid, r := range byOID {
		top := r
		// index → TOAST table → table: at most two steps.
		for range 3 {
			o, ok := byOID[top.owner]
			if top.owner == 0 || !ok || top.owner == oid {
				break
			}
			top = o
		}
		switch {
		case top.isCatalogue:
			out[r.filenode] = "(catalog)"
		case top.nsp == "public":
			out[r.filenode] = top.name
		default:
			out[r.filenode] = top.nsp + "." + top.name
		}
	}
	return out, nil
}

// checkRetained fails with ErrWALRecycled when the segment holding start
// is gone from pg_wal.
func (w *WALWindow) checkRetained(ctx context.Context, start string) error {
	var gone bool
	err := w.conn.QueryRow(ctx, `
		SELECT coalesce(min(name) > pg_walfile_name($1::pg_lsn), false)
		  FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'`, start).Scan(&gone)
	if err != nil {
		return err
	}
	if gone {
		return fmt.Errorf("%w: the window starts at %s", ErrWALRecycled, start)
	}
	return nil
}

// readErr turns pg_walinspect's failure to open a removed segment into
// ErrWALRecycled.
func (w *WALWindow) readErr(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "removed") || strings.Contains(msg, "could not open file") || strings.Contains(msg, "could not find file") {
		return fmt.Errorf("%w: %v", ErrWALRecycled, err)
	}
	return err
}
