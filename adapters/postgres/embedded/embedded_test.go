package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/embedded"
	"github.com/usersd/usersd/adapters/postgres/embedded/embeddedtest"
)

// root is a directory for a cluster, not made yet.
func root(t *testing.T) string {
	t.Helper()
	return filepath.Join(embeddedtest.Dir(t), "data", "postgres")
}

func answers(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func TestClusterIsStartedReusedAndKeepsItsData(t *testing.T) {
	t.Parallel()
	dir := root(t)
	ctx := context.Background()

	c, err := embedded.Start(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	defer c.Stop()
	url := c.URL("postgres")
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != filepath.Join(dir, "run") && !strings.HasPrefix(cfg.Host, filepath.Join(os.TempDir(), "usersd-pg-")) {
		t.Fatalf("cluster on %q, want a socket directory of its own (%s)", cfg.Host, filepath.Join(dir, "run"))
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	// A second process finds it running, uses it, and leaves it running.
	c2, err := embedded.Start(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if c2.URL("postgres") != url {
		t.Errorf("second start uses %q, want the same cluster %q", c2.URL("postgres"), url)
	}
	c2.Stop()
	if err := answers(ctx, url); err != nil {
		t.Fatalf("the second process stopped a cluster it did not start: %v", err)
	}

	// The first one stops it on its way out.
	c.Stop()
	if err := answers(ctx, url); err == nil {
		t.Fatalf("the cluster still answers after its starter stopped it")
	}

	// A later start keeps the data.
	c3, err := embedded.Start(ctx, dir, embedded.Options{})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c3.Stop()
	conn, err = pgx.Connect(ctx, c3.URL("postgres"))
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
		t.Fatalf("the table is gone after a restart: %v", err)
	}
}
