package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// result is one benchmark's last reported line.
type result struct {
	name    string // without the -GOMAXPROCS suffix
	pkg     string
	n       int
	metrics map[string]float64 // by unit
	units   []string           // in the order reported
}

// run is what one `go test -bench` output holds.
type run struct {
	results   []*result          // in order of first appearance
	byName    map[string]*result // by package and name
	summaries map[string]string  // benchmark → its last SUMMARY line
	logs      map[string][]string
	packages  []pkgResult
	failures  []string // FAIL lines, panics, skipped benchmarks
	cpu       string
}

type pkgResult struct {
	pkg, status string
	seconds     float64
}

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)
	// A benchmark that logs to stderr (slog) splits its line: the name,
	// the log lines, then the figures alone on an indented line.
	benchName = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s`)
	figures   = regexp.MustCompile(`^\s+(\d+)\s+([-\d.e+]+ \S+.*)$`)
	benchHead = regexp.MustCompile(`^--- (BENCH|SKIP|FAIL): (Benchmark\S+?)(-\d+)?$`)
	logLine   = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
	okLine    = regexp.MustCompile(`^(ok|FAIL)\s+(\S+)\s+([\d.]+)s`)
)

// parse reads `go test -bench` output (several packages, as ./... prints).
func parse(r io.Reader) (*run, error) {
	out := &run{byName: map[string]*result{}, summaries: map[string]string{}, logs: map[string][]string{}}
	pkg, current, pending := "", "", ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// A benchmark that fails or skips prints its verdict on its own
		// name's line: "BenchmarkX-2   \t--- FAIL: BenchmarkX-2".
		if i := strings.Index(line, "\t--- "); i > 0 && strings.HasPrefix(line, "Benchmark") {
			line = line[i+1:]
		}
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "cpu: "):
			out.cpu = strings.TrimPrefix(line, "cpu: ")
		case benchLine.MatchString(line) || (pending != "" && figures.MatchString(line)):
			m := benchLine.FindStringSubmatch(line)
			if m == nil {
				f := figures.FindStringSubmatch(line)
				m = []string{"", pending, "", f[1], f[2]}
			}
			pending = ""
			res := &result{name: m[1], pkg: pkg, metrics: map[string]float64{}}
			res.n, _ = strconv.Atoi(m[3])
			f := strings.Fields(m[4])
			for i := 0; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				res.metrics[f[i+1]] = v
				res.units = append(res.units, f[i+1])
			}
			// Two packages may hold benchmarks of one name; within a
			// package a later line replaces an earlier one.
			key := res.pkg + " " + res.name
			if _, seen := out.byName[key]; !seen {
				out.results = append(out.results, res)
			} else {
				for i, old := range out.results {
					if old.pkg == res.pkg && old.name == res.name {
						out.results[i] = res
					}
				}
			}
			out.byName[key] = res
			current = ""
		case benchName.MatchString(line) && !strings.HasPrefix(line, "Benchmark "):
			pending = benchName.FindStringSubmatch(line)[1]
		case benchHead.MatchString(line):
			m := benchHead.FindStringSubmatch(line)
			current = m[2]
			if m[1] != "BENCH" {
				out.failures = append(out.failures, line)
			}
		case current != "" && logLine.MatchString(line):
			msg := logLine.FindStringSubmatch(line)[1]
			if s, ok := strings.CutPrefix(msg, "SUMMARY "); ok {
				out.summaries[current] = s
			} else {
				out.logs[current] = appendOnce(out.logs[current], msg)
			}
		case okLine.MatchString(line):
			m := okLine.FindStringSubmatch(line)
			secs, _ := strconv.ParseFloat(m[3], 64)
			out.packages = append(out.packages, pkgResult{pkg: m[2], status: m[1], seconds: secs})
			if m[1] == "FAIL" {
				out.failures = append(out.failures, line)
			}
		case strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL\t"):
			out.failures = append(out.failures, line)
		}
	}
	return out, sc.Err()
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
