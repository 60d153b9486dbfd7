// Package embeddedtest gives tests a place for a private PostgreSQL cluster
// (package embedded).
package embeddedtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/usersd/usersd/adapters/postgres/embedded"
)

// Dir is an empty directory that a cluster can live under; the test is
// skipped where there are no PostgreSQL server binaries. As root the cluster
// runs as postgres, which must reach the directory: t.TempDir makes it
// private, so it and its parent are opened to others.
func Dir(t testing.TB) string {
	t.Helper()
	if _, err := embedded.FindBin(); err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
