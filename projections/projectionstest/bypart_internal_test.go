package projectionstest

import "testing"

// A transaction that wrote two tables of one part is one of that part's
// transactions, not two.
func TestByPartCountsATransactionOncePerPart(t *testing.T) {
	t.Parallel()
	c := WALCost{
		Tables: map[string]*TableCost{
			"a": {Commits: 2}, "b": {Commits: 1}, "c": {Commits: 1},
		},
		txTables: [][]string{{"a", "b"}, {"a", "c"}},
	}
	got := map[string]int{}
	for _, p := range c.ByPart(map[string]string{"a": "ab", "b": "ab", "c": "c"}) {
		got[p.Part] = p.Commits
	}
	if got["ab"] != 2 || got["c"] != 1 {
		t.Errorf("commits by part %v, want ab 2 (not 3), c 1", got)
	}
}
