package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/projections"
)

var _ projections.Comparer = (*Projection)(nil)

// Divergence is the first entry of a workspace where a rebuilt chain
// differs from the live one.
type Divergence struct {
	WorkspaceID uuid.UUID
	Seq         int64
	// LiveHash and RebuiltHash are the entry's hash in each chain;
	// RebuiltHash is "" when the rebuilt chain has no entry at Seq. They
	// are equal when only the live entry's content differs: it was edited
	// without rehashing.
	LiveHash, RebuiltHash string
}

// DivergenceError is what Compare answers when the chains differ: the
// first difference of each workspace that has one, in workspace order. It
// wraps projections.ErrDiverged.
type DivergenceError struct {
	Divergences []Divergence
}

// maxNamed bounds the workspaces Error names.
const maxNamed = 10

func (e *DivergenceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the rebuilt audit history differs from the live one in %d workspace(s) (events rewritten or removed, or live entries changed):", len(e.Divergences))
	for i, d := range e.Divergences {
		if i == maxNamed {
			fmt.Fprintf(&b, "; and %d more", len(e.Divergences)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " workspace %s at seq %d: %s", d.WorkspaceID, d.Seq, d.describe())
	}
	return b.String()
}

func (d Divergence) describe() string {
	hash := func(h string) string {
		if h == "" {
			return "none (no such entry)"
		}
		return h
	}
	if d.LiveHash == d.RebuiltHash {
		return "live hash " + d.LiveHash + ", rebuilt hash the same, but the live entry's content differs (edited without rehashing)"
	}
	return "live hash " + hash(d.LiveHash) + ", rebuilt hash " + hash(d.RebuiltHash)
}

func (e *DivergenceError) Unwrap() error { return projections.ErrDiverged }

// SameAs implements projections.SameDivergence: other is a DivergenceError
// with the same divergences, in the same order.
func (e *DivergenceError) SameAs(other error) bool {
	var o *DivergenceError
	return errors.As(other, &o) && slices.Equal(e.Divergences, o.Divergences)
}

var _ projections.SameDivergence = (*DivergenceError)(nil)

// Compare implements projections.Comparer: every live entry must be in the
// rebuilt chain, the same column for column at the same seq. The rebuilt
// tables are at the live checkpoint or beyond it (when the live runner lags
// or does not run), so they hold every event the live ones do, and maybe
// more: an entry only the rebuilt chain has is no difference, one only the
// live chain has is (events removed, even from the end, leave a shorter
// rebuilt chain). One pass over both tables (a hash join); the addresses
// table is state, not evidence, and is not compared.
func (p *Projection) Compare(ctx context.Context, tx pgx.Tx, rebuilt, live string) error {
	var differs strings.Builder
	for i, c := range columnNames {
		if i > 0 {
			differs.WriteString(", ")
		}
		differs.WriteString("l." + c)
	}
	lcols := differs.String()
	rcols := strings.ReplaceAll(lcols, "l.", "r.")
	sql := `SELECT DISTINCT ON (l.workspace_id) l.workspace_id, l.seq, l.hash, r.hash
		FROM ` + pgx.Identifier{live, "audit_entries"}.Sanitize() + ` l
		LEFT JOIN ` + pgx.Identifier{rebuilt, "audit_entries"}.Sanitize() + ` r
			ON r.workspace_id = l.workspace_id AND r.seq = l.seq
		WHERE (` + lcols + `) IS DISTINCT FROM (` + rcols + `)
		ORDER BY l.workspace_id, l.seq`
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("audit: compare %s with %s: %w", rebuilt, live, err)
	}
	var found []Divergence
	var d Divergence
	var lh, rh pgtype.Text
	_, err = pgx.ForEachRow(rows, []any{&d.WorkspaceID, &d.Seq, &lh, &rh}, func() error {
		d.LiveHash, d.RebuiltHash = lh.String, rh.String
		found = append(found, d)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: compare %s with %s: %w", rebuilt, live, err)
	}
	if len(found) > 0 {
		return &DivergenceError{Divergences: found}
	}
	return nil
}
