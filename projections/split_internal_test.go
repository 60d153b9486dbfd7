package projections

import (
	"slices"
	"testing"
)

// TestSplitStatements: a rebuild builds each index of Schema.Indexes apart,
// so the DDL is cut at the semicolons that end statements only: not in a
// comment, a string or a quoted name.
func TestSplitStatements(t *testing.T) {
	sql := `-- a comment; with a semicolon
CREATE INDEX a ON t (x) WHERE y <> 'a;b';
CREATE INDEX "b;c" ON t USING gin (z gin_trgm_ops); -- trailing; comment

CREATE INDEX d ON t ((coalesce(w, '-infinity'::timestamptz)))`
	want := []string{
		`CREATE INDEX a ON t (x) WHERE y <> 'a;b'`,
		`CREATE INDEX "b;c" ON t USING gin (z gin_trgm_ops)`,
		`CREATE INDEX d ON t ((coalesce(w, '-infinity'::timestamptz)))`,
	}
	if got := splitStatements(sql); !slices.Equal(got, want) {
		t.Errorf("splitStatements: got %q, want %q", got, want)
	}
}
