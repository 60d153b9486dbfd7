package projections

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	got, err := splitStatements(sql)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("splitStatements: got %q, %v, want %q", got, err, want)
	}
}

// TestSplitStatementsRefusesWhatItCannotParse: a semicolon in a block
// comment or a dollar-quoted string would cut a statement silently, so
// both are refused; in a string or a -- comment they are only text.
func TestSplitStatementsRefusesWhatItCannotParse(t *testing.T) {
	for _, sql := range []string{
		"CREATE INDEX a ON t (x); /* b; c */ CREATE INDEX b ON t (y)",
		"CREATE INDEX a ON t (f(x, $$a;b$$))",
		"CREATE INDEX a ON t (f(x, $q$a;b$q$))",
	} {
		if got, err := splitStatements(sql); err == nil {
			t.Errorf("splitStatements(%q): got %q, want an error", sql, got)
		}
	}
	ok := "-- costs $5 /* not a block */\nCREATE INDEX a ON t (x) WHERE y <> '$/*'"
	if got, err := splitStatements(ok); err != nil || len(got) != 1 {
		t.Errorf("splitStatements(%q): got %q, %v, want one statement", ok, got, err)
	}
}

// TestReadModelIndexesSplit: every read model's indexes.sql splits, into
// one statement per index it creates.
func TestReadModelIndexesSplit(t *testing.T) {
	files, err := filepath.Glob("*/indexes.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("find the read models' indexes.sql: got %q, %v", files, err)
	}
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stmts, err := splitStatements(string(sql))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.Count(string(sql), "CREATE INDEX"); len(stmts) != want || want == 0 {
			t.Errorf("%s: got %d statements, want %d (one per CREATE INDEX)", f, len(stmts), want)
		}
		for _, st := range stmts {
			if !strings.HasPrefix(st, "CREATE INDEX") {
				t.Errorf("%s: statement %q does not start with CREATE INDEX", f, st)
			}
		}
	}
}
