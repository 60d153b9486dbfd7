package pgtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Template databases are named after their migration set; a checkout with
// other migrations (an older commit, another branch) makes another. Each
// test process holds a shared advisory lock, keyed by its template's name,
// from before it builds or copies the template until it exits; a template
// of another set is dropped only while an exclusive try-lock on its key
// succeeds, that is, while no process uses it. The locks live in the admin
// database (EnvAdminURL), which every process connects to.
//
// Only templates this scheme made are dropped: they carry templateComment.
// Templates made before it (or by a checkout without it, whose runs take
// no lock) are left alone: drop those by hand once no test runs
// (`psql -l` lists them, usersd_tmpl_...).

// templatePrefix begins every template's name.
const templatePrefix = "usersd_tmpl_"

// templateComment marks the templates of this scheme.
const templateComment = "usersd pgtest template; in use while a shared advisory lock on its name is held (adapters/postgres/pgtest)"

// templateKey is the advisory lock of the template named name (and of its
// _building copy).
func templateKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("usersd pgtest template " + strings.TrimSuffix(name, "_building")))
	return int64(h.Sum64())
}

// inUse is the connection that holds this process's shared template locks,
// open until the process exits.
var inUse struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// holdTemplate takes the shared lock of template name for the rest of the
// process, waiting while another process drops that template (it is then
// built again).
func holdTemplate(ctx context.Context, name string) error {
	inUse.mu.Lock()
	defer inUse.mu.Unlock()
	if inUse.conn == nil || inUse.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return fmt.Errorf("connect to admin database: %w", err)
		}
		inUse.conn = conn
	}
	if _, err := inUse.conn.Exec(ctx, "SELECT pg_advisory_lock_shared($1)", templateKey(name)); err != nil {
		return fmt.Errorf("lock template %s: %w", name, err)
	}
	return nil
}

// dropUnusedTemplates drops the templates of this scheme other than keep
// (and their unfinished _building copies) that no process uses, and
// answers the names it dropped. A drop that fails (someone connected
// meanwhile) is skipped.
func dropUnusedTemplates(ctx context.Context, keep string) ([]string, error) {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return nil, fmt.Errorf("connect to admin database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) // ends any lock left
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database d
		WHERE starts_with(datname, $1) AND shobj_description(d.oid, 'pg_database') = $2 ORDER BY datname`, templatePrefix, templateComment)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, name := range names {
		if strings.TrimSuffix(name, "_building") == keep {
			continue
		}
		key := templateKey(name)
		var free bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&free); err != nil {
			return dropped, err
		}
		if !free {
			continue // in use
		}
		// Without FORCE: a drop never cuts a copy or a build in progress.
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)); err == nil {
			dropped = append(dropped, name)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

// quote is s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
