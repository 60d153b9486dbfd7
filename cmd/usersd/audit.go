package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections/audit"
)

func auditCommand() *command {
	return &command{
		Name:     "audit",
		Synopsis: "verify [-workspace ID] [flags]",
		Summary:  "verify the audit history's hash chains",
		Help: `
audit verify recomputes the hash chain of one workspace's audit history, or of
every workspace's, and names the first broken entry of each chain that does not
check out. It exits 1 if any chain is broken.

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseURL := databaseFlag(fs)
			workspace := fs.String("workspace", "", "verify only this workspace `ID`")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 || args[0] != "verify" {
					return usageErrorf("want: usersd audit verify [-workspace ID]")
				}
				var only uuid.UUID
				if *workspace != "" {
					id, err := uuid.Parse(*workspace)
					if err != nil {
						return usageErrorf("-workspace %q is not a workspace id (a UUID)", *workspace)
					}
					only = id
				}
				db, err := resolveDatabase(fs, *databaseURL, e.Getenv)
				if err != nil {
					return err
				}
				rt, err := open(ctx, e, db, needs{pool: true})
				if err != nil {
					return err
				}
				defer rt.close()
				ids := []uuid.UUID{only}
				if only == uuid.Nil {
					if ids, err = auditedWorkspaces(ctx, rt.pool); err != nil {
						return err
					}
				}
				broken := 0
				for _, ws := range ids {
					res, err := audit.Verify(ctx, rt.pool, ws)
					if err != nil {
						return fmt.Errorf("verify %s: %w", ws, err)
					}
					if res.OK {
						fmt.Fprintf(e.Stdout, "%s ok (%d entries)\n", ws, res.Entries)
						continue
					}
					broken++
					fmt.Fprintf(e.Stdout, "%s BROKEN at seq %d (%d entries)\n", ws, *res.FirstBrokenSeq, res.Entries)
				}
				if broken > 0 {
					return fmt.Errorf("%d of %d audit chains are broken", broken, len(ids))
				}
				fmt.Fprintf(e.Stdout, "%d audit chains verified\n", len(ids))
				return nil
			}
		},
	}
}

func auditedWorkspaces(ctx context.Context, db audit.DB) ([]uuid.UUID, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT workspace_id FROM audit_entries ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list audited workspaces: %w", err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
