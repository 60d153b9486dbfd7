package audit

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections"
)

// DB is what the queries need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB = projections.DB

// VerifyResult is the answer of GET /audit/verify.
type VerifyResult struct {
	// OK is true when every entry's hash matches its content and the
	// previous entry's hash, and seqs run 1, 2, 3... without a gap.
	OK bool `json:"ok"`
	// Entries counts the workspace's entries.
	Entries int `json:"entries"`
	// FirstBrokenSeq names the first entry that does not check out: one
	// whose content or link was changed, or the one after removed entries.
	FirstBrokenSeq *int64 `json:"firstBrokenSeq,omitempty"`
}

// Verify recomputes the hash chain of a workspace's audit history, reading
// the entries in seq order one row at a time (memory stays flat however long
// the history), and names the first broken entry. A workspace without
// entries verifies as OK with zero entries.
//
// The chain proves every entry up to the last one. Entries removed from the
// end leave a shorter chain that checks out, and so does a chain rewritten
// and rehashed from some entry on: to notice either, keep the hash of the
// last entry somewhere the database's owner cannot write (an export, a
// ticket) and check that the chain still contains it.
func Verify(ctx context.Context, db DB, ws uuid.UUID) (VerifyResult, error) {
	rows, err := db.Query(ctx, `SELECT `+columns+` FROM audit_entries WHERE workspace_id = $1 ORDER BY seq`, ws)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("audit verify %s: %w", ws, err)
	}
	defer rows.Close()

	res := VerifyResult{OK: true}
	broken := func(seq int64) {
		if res.OK {
			res.OK = false
			res.FirstBrokenSeq = &seq
		}
	}
	var r row
	targets := r.scanTargets()
	var buf []byte
	prev := chainHead{} // seq 0, hash "": what the first entry chains from
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return VerifyResult{}, fmt.Errorf("audit verify %s: %w", ws, err)
		}
		res.Entries++
		if !res.OK {
			continue // count the rest; the first break is named
		}
		if r.seq != prev.seq+1 || r.prevHash != prev.hash {
			broken(r.seq)
			continue
		}
		details, err := canonicalJSON(r.details)
		if err != nil {
			broken(r.seq)
			continue
		}
		r.details = details
		var want string
		want, buf = computeHash(buf, prev.hash, &r)
		if r.hash != want {
			broken(r.seq)
			continue
		}
		prev = chainHead{seq: r.seq, hash: r.hash}
	}
	if err := rows.Err(); err != nil {
		return VerifyResult{}, fmt.Errorf("audit verify %s: %w", ws, err)
	}
	return res, nil
}
