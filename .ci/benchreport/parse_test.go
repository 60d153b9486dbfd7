package main

import (
	"strings"
	"testing"
)

// sample is go test -bench output as make bench gets it: two packages with
// a benchmark of the same name, one line split by a benchmark's slog
// lines, summaries logged twice (b.N grew), and a failed benchmark.
const sample = `goos: linux
pkg: github.com/usersd/usersd/projections/audit
cpu: Some CPU
BenchmarkApply-2     	  157675	     33982 ns/op	     29427 events/s
BenchmarkRebuild-2               	2026/11/28 02:49:22 INFO rebuild: replaying the history projection=audit
2026/11/28 02:49:22 INFO rebuild: swapping the tables in projection=audit events=92
  200754	     15862 ns/op	     63045 events/s	     764 B/op	       5 allocs/op
ok  	github.com/usersd/usersd/projections/audit	52.975s
pkg: github.com/usersd/usersd/projections/benchmarks
BenchmarkApply-2     	  10	     1 ns/op	     7 events/s
BenchmarkInviteBatch/addresses=100-2         	     225	  19755022 ns/op	         0.7416 accounts-share	         0.19 ratio-copy
--- BENCH: BenchmarkInviteBatch/addresses=100-2
    invite_test.go:98: SUMMARY first
    invite_test.go:98: SUMMARY second
BenchmarkRebuild/memberships-2               	--- FAIL: BenchmarkRebuild/memberships-2
    watermill_test.go:123: nothing for a minute
FAIL	github.com/usersd/usersd/projections/benchmarks	210.582s
`

func TestParse(t *testing.T) {
	t.Parallel()
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	audit := "github.com/usersd/usersd/projections/audit"
	benches := "github.com/usersd/usersd/projections/benchmarks"
	for _, c := range []struct {
		pkg, name, unit string
		want            float64
	}{
		{audit, "BenchmarkApply", "events/s", 29427},
		{benches, "BenchmarkApply", "events/s", 7},
		{audit, "BenchmarkRebuild", "events/s", 63045},
		{benches, "BenchmarkInviteBatch/addresses=100", "ratio-copy", 0.19},
	} {
		res, ok := r.byName[c.pkg+" "+c.name]
		if !ok {
			t.Errorf("%s %s: not parsed", c.pkg, c.name)
			continue
		}
		if got := res.metrics[c.unit]; got != c.want {
			t.Errorf("%s %s %s: got %v, want %v", c.pkg, c.name, c.unit, got, c.want)
		}
	}
	if got, want := len(r.results), 4; got != want {
		t.Errorf("results: got %d, want %d", got, want)
	}
	if got, want := r.summaries["BenchmarkInviteBatch/addresses=100"], "second"; got != want {
		t.Errorf("summary: got %q, want the last one logged, %q", got, want)
	}
	if got := strings.Join(r.failures, "\n"); !strings.Contains(got, "--- FAIL: BenchmarkRebuild/memberships") || !strings.Contains(got, "FAIL\tgithub.com/usersd/usersd/projections/benchmarks") {
		t.Errorf("failures: got %q, want the failed benchmark and package", got)
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	res := []*result{
		{name: "a", metrics: map[string]float64{"ratio": 0.7}},
		{name: "b", metrics: map[string]float64{"ratio": 0.9}},
	}
	atLeast := goal{text: "≥ 0.8×", unit: "ratio", atLeast: true, target: 0.8, why: "because"}
	got := judge(atLeast, []string{"16", "64"}, res)
	if len(got) != 2 {
		t.Fatalf("got %d verdicts, want 2: %q", len(got), got)
	}
	if !strings.Contains(got[0], "**missed** by 0.100, 13%. Why: because") {
		t.Errorf("verdict for 0.7: got %q, want missed by 0.100, 13%%, with the why", got[0])
	}
	if !strings.HasSuffix(got[1], ": met") || strings.Contains(got[1], "because") {
		t.Errorf("verdict for 0.9: got %q, want met without the why", got[1])
	}
	only16 := atLeast
	only16.applies = at("16")
	if got := judge(only16, []string{"16", "64"}, res); len(got) != 1 {
		t.Errorf("a goal at 16 writers judged %d rows, want 1", len(got))
	}
	zero := goal{text: "none missing", unit: "missing", target: 0}
	if got := judge(zero, []string{"x"}, []*result{{metrics: map[string]float64{"missing": 2}}}); !strings.Contains(got[0], "**missed** by 2") {
		t.Errorf("2 missing: got %q, want missed by 2", got[0])
	}
}
