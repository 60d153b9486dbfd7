// Command testsummary reads `go test -json` on standard input and prints what
// plain `go test` prints: one line per package, and the output of failed
// tests only (passing and skipped tests stay quiet). It closes with a count:
//
//	tests: 212 passed, 0 failed, 3 skipped
//
// It exits 1 when a test, a package or a build failed, so it can stand at the
// end of a pipeline; run the pipeline with pipefail anyway, so that go test's
// own exit status counts too. Lines that are not JSON (the go command's own
// messages, when stderr is merged in) are printed as they come.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

// testRun is what we keep of one test (or subtest) until it ends.
type testRun struct {
	name   string
	output strings.Builder
	done   bool
	failed bool
	seq    int // order in which it ended
}

// pkgRun holds the tests of one package, in the order they started.
type pkgRun struct {
	tests map[string]*testRun
	order []*testRun
	ended int
}

type summary struct {
	out io.Writer

	pkgs map[string]*pkgRun

	passed, failed, skipped int
	pkgOK, pkgFailed        int
	pkgNoTests              int
	buildFailed             int
}

func main() {
	s := &summary{out: os.Stdout, pkgs: map[string]*pkgRun{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if !s.finish() {
		os.Exit(1)
	}
}

func (s *summary) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			s.line(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *summary) line(line []byte) {
	var e event
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &e) != nil || e.Action == "" {
		s.out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			io.WriteString(s.out, "\n")
		}
		return
	}
	switch {
	case e.Action == "build-output":
		io.WriteString(s.out, e.Output)
	case e.Action == "build-fail":
		s.buildFailed++
	case e.Test == "":
		s.packageEvent(e)
	default:
		s.testEvent(e)
	}
}

func (s *summary) pkg(name string) *pkgRun {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgRun{tests: map[string]*testRun{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) packageEvent(e event) {
	switch e.Action {
	case "output":
		if e.Output == "PASS\n" || e.Output == "testing: warning: no tests to run\n" {
			return // plain go test does not print these either
		}
		if strings.HasPrefix(e.Output, "FAIL") {
			// The package failed: show tests that never finished (a panic,
			// a timeout, os.Exit) before the FAIL line.
			s.flushUnfinished(e.Package)
		}
		io.WriteString(s.out, e.Output)
	case "pass":
		s.pkgOK++
	case "fail":
		s.flushUnfinished(e.Package)
		s.pkgFailed++
	case "skip":
		s.pkgNoTests++
	}
}

func (s *summary) testEvent(e event) {
	p := s.pkg(e.Package)
	t := p.tests[e.Test]
	if t == nil {
		t = &testRun{name: e.Test}
		p.tests[e.Test] = t
		p.order = append(p.order, t)
	}
	switch e.Action {
	case "output":
		if !isFraming(e.Output) {
			t.output.WriteString(e.Output)
		}
	case "pass", "skip", "fail":
		if t.done {
			return
		}
		t.done = true
		p.ended++
		t.seq = p.ended
		switch e.Action {
		case "pass":
			s.passed++
		case "skip":
			s.skipped++
		case "fail":
			s.failed++
			t.failed = true
		}
		// A failed subtest is printed with its top-level test, each
		// test's output (its logs, then its --- FAIL line) in the order
		// they ended, as go test -v shows them.
		if !strings.Contains(e.Test, "/") {
			s.flushTree(p, e.Test)
		}
	}
}

// isFraming reports whether out is one of the lines go test -v adds to mark
// where a test runs; plain go test does not print them.
func isFraming(out string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(out, p) {
			return true
		}
	}
	return false
}

// flushTree prints the failed tests of the tree rooted at top and forgets the
// whole tree.
func (s *summary) flushTree(p *pkgRun, top string) {
	kept := p.order[:0]
	var failed []*testRun
	for _, t := range p.order {
		if t.name != top && !strings.HasPrefix(t.name, top+"/") {
			kept = append(kept, t)
			continue
		}
		if t.failed {
			failed = append(failed, t)
		}
		delete(p.tests, t.name)
	}
	p.order = kept
	sort.Slice(failed, func(i, j int) bool { return failed[i].seq < failed[j].seq })
	for _, t := range failed {
		io.WriteString(s.out, t.output.String())
	}
}

// flushUnfinished prints every test of pkg that failed or never ended.
func (s *summary) flushUnfinished(pkg string) {
	p := s.pkgs[pkg]
	if p == nil {
		return
	}
	for _, t := range p.order {
		if t.failed || !t.done {
			io.WriteString(s.out, t.output.String())
			if !t.done {
				fmt.Fprintf(s.out, "--- UNFINISHED: %s (the test binary stopped while it ran)\n", t.name)
			}
		}
	}
	delete(s.pkgs, pkg)
}

// finish prints what is left and the closing counts; it reports whether
// everything passed.
func (s *summary) finish() bool {
	for name := range s.pkgs {
		s.flushUnfinished(name)
	}
	fmt.Fprintf(s.out, "\npackages: %d ok, %d failed, %d without tests", s.pkgOK, s.pkgFailed, s.pkgNoTests)
	if s.buildFailed > 0 {
		fmt.Fprintf(s.out, ", %d failed to build", s.buildFailed)
	}
	fmt.Fprintln(s.out)
	fmt.Fprintf(s.out, "tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return s.failed == 0 && s.pkgFailed == 0 && s.buildFailed == 0
}
