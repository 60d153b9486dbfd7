package pgtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A template of another migration set is dropped once no test process
// holds its lock, never while one does; the current one stays, and so do
// templates this scheme did not make.
func TestUnusedTemplatesOfOtherMigrationSetsAreDropped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	current, err := template(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another process using an older template: it holds the shared lock
	// before the template exists, as template does.
	otherName := templatePrefix + randomHex(8)
	user, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close(context.Background())
	if _, err := user.Exec(ctx, "SELECT pg_advisory_lock_shared($1)", templateKey(otherName)); err != nil {
		t.Fatal(err)
	}
	unmarked := templatePrefix + randomHex(8)
	for _, sql := range []string{
		"CREATE DATABASE " + ident(otherName), "COMMENT ON DATABASE " + ident(otherName) + " IS " + quote(templateComment),
		"CREATE DATABASE " + ident(unmarked),
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range []string{otherName, unmarked} {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident(n))
		}
	})
	exists := func(name string) bool {
		var ok bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	dropped, err := dropUnusedTemplates(ctx, current)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(dropped, otherName) || !exists(otherName) {
		t.Errorf("dropped %v: the template another process uses went", dropped)
	}
	if _, err := user.Exec(ctx, "SELECT pg_advisory_unlock_shared($1)", templateKey(otherName)); err != nil {
		t.Fatal(err)
	}
	if _, err := dropUnusedTemplates(ctx, current); err != nil {
		t.Fatal(err)
	}
	// Another test process may have dropped it first: either way it is gone.
	if exists(otherName) {
		t.Errorf("the template %s no one uses is still there", otherName)
	}
	if !exists(current) {
		t.Errorf("the current template %s went", current)
	}
	if !exists(unmarked) {
		t.Errorf("a template this scheme did not make (%s) went", unmarked)
	}
}
