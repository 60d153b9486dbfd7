package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	// Missing answers a Kept entry: true when the chain no longer holds
	// an entry with its seq and hash (cut off, or rewritten and rehashed),
	// and OK is then false; nil when no entry was asked about.
	Missing *bool `json:"missing,omitempty"`
}

// Kept is an entry an auditor kept (from a signed head or an export's
// checkpoint) to ask later whether the chain still holds it.
type Kept struct {
	Seq  int64
	Hash string
}

// ParseKept reads "{seq}:{hash}" (GET .../audit/verify?contains=): seq a
// positive decimal without leading zeros, hash 64 lower-case hex digits,
// as the API writes them; or exactly "0:", the signed head of an empty
// chain (seq 0, hash ""), which every chain holds. Anything else is a
// *domain.Error with code CodeInvalidInput whose Field is param.
func ParseKept(param, s string) (Kept, error) {
	if s == "0:" {
		return Kept{}, nil
	}
	seqText, hash, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq < 1 || strconv.FormatInt(seq, 10) != seqText || !isHash(hash) {
		return Kept{}, invalid(param, "want {seq}:{hash}, an entry's seq and its hash (64 lower-case hex digits), e.g. 42:%s", strings.Repeat("0", 64))
	}
	return Kept{Seq: seq, Hash: hash}, nil
}

// isHash reports whether s is a hash as entries store it: 64 lower-case
// hex digits.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ReadHead reads where a workspace's chain stands, through the primary key
// (its last entry): no scan, however long the history. A workspace without
// entries is at seq 0, hash "".
func ReadHead(ctx context.Context, db DB, ws uuid.UUID) (Head, error) {
	h := Head{WorkspaceID: ws}
	err := db.QueryRow(ctx, `SELECT seq, hash FROM audit_entries WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1`, ws).Scan(&h.Seq, &h.Hash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Head{}, fmt.Errorf("audit head %s: %w", ws, err)
	}
	return h, nil
}

// HeadAt answers the head the chain had at the entry of event eventID:
// that entry's seq and hash; false if the workspace has no entry for it
// (yet).
func HeadAt(ctx context.Context, db DB, ws, eventID uuid.UUID) (Head, bool, error) {
	h := Head{WorkspaceID: ws}
	err := db.QueryRow(ctx, `SELECT seq, hash FROM audit_entries WHERE event_id = $1 AND workspace_id = $2`, eventID, ws).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return Head{}, false, nil
	}
	if err != nil {
		return Head{}, false, fmt.Errorf("audit head at %s: %w", eventID, err)
	}
	return h, true, nil
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
	return VerifyKept(ctx, db, ws, nil)
}

// VerifyKept is Verify, and also answers whether the chain still holds the
// kept entry, if one is given: an entry with its seq and hash. The chain
// of hashes makes that one comparison enough for everything before it:
// entries cut from the end, or rewritten and rehashed from some entry on,
// no longer hold the kept hash at its seq. It costs Verify's one pass.
func VerifyKept(ctx context.Context, db DB, ws uuid.UUID, kept *Kept) (VerifyResult, error) {
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
	found := kept != nil && kept.Seq == 0 && kept.Hash == "" // where every chain starts
	var r row
	targets := r.scanTargets()
	var buf []byte
	prev := chainHead{} // seq 0, hash "": what the first entry chains from
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return VerifyResult{}, fmt.Errorf("audit verify %s: %w", ws, err)
		}
		res.Entries++
		if kept != nil && r.seq == kept.Seq {
			found = r.hash == kept.Hash
		}
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
	if kept != nil {
		missing := !found
		res.Missing = &missing
		res.OK = res.OK && found
	}
	return res, nil
}
