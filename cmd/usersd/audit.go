package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections/audit"
)

func auditCommand() *command {
	return &command{
		Name:     "audit",
		Synopsis: "verify [-workspace ID] | verify -file F (-public-key K | -keys keys.json) [-filtered] [-contains SEQ:HASH]",
		Summary:  "verify the audit history's hash chains, or an export offline",
		Help: `
audit verify recomputes the hash chain of one workspace's audit history, or of
every workspace's, and names the first broken entry of each chain that does not
check out. It exits 1 if any chain is broken.

audit verify -file F verifies an NDJSON audit export offline, with no database:
an auditor's check on their own machine. It recomputes every entry's hash from
its content, checks that each entry links to the one before it and that the
file ends with a checkpoint line over its last entry, signed by one of the
given public keys (-public-key, base64url, as GET /v1/audit/keys shows it; or
-keys, a file holding that endpoint's answer). A gap in the seqs is a break
unless -filtered says the export was filtered; the checkpoint then vouches only
for the entries that link to it without a gap. -contains SEQ:HASH (from a
signed head or an earlier export's checkpoint) also requires that the export
still holds that entry. It exits 0 when the export is intact, 1 when it is
not (naming the first broken entry), 2 on a usage error.

Environment:
  DATABASE_URL       PostgreSQL connection URL (default: the local server)`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseFlag(fs)
			workspace := fs.String("workspace", "", "verify only this workspace `ID`")
			var off offlineFlags
			fs.StringVar(&off.file, "file", "", "verify this NDJSON export `file` offline, without a database (- for stdin)")
			fs.StringVar(&off.publicKeys, "public-key", "", "the public `key`s (base64url, comma-separated) that may have signed the export's checkpoint")
			fs.StringVar(&off.keysFile, "keys", "", "a `file` holding the answer of GET /v1/audit/keys, whose keys may have signed the checkpoint")
			fs.BoolVar(&off.filtered, "filtered", false, "the export was filtered: accept gaps in the seqs")
			fs.StringVar(&off.contains, "contains", "", "`SEQ:HASH` of an entry kept from earlier that the export must still hold")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 || args[0] != "verify" {
					return usageErrorf("want: usersd audit verify [-workspace ID], or usersd audit verify -file F -public-key K")
				}
				if off.file != "" || off.publicKeys != "" || off.keysFile != "" || off.filtered || off.contains != "" {
					if *workspace != "" || databaseURLSetting.given(fs) {
						return usageErrorf("-file verifies an export offline: -workspace and -database-url do not go with it")
					}
					return verifyExportFile(e, off)
				}
				var only uuid.UUID
				if *workspace != "" {
					id, err := uuid.Parse(*workspace)
					if err != nil {
						return usageErrorf("-workspace %q is not a workspace id (a UUID)", *workspace)
					}
					only = id
				}
				rt, err := openFrom(ctx, fs, e, needs{pool: true})
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

// offlineFlags are the flags of usersd audit verify -file.
type offlineFlags struct {
	file, publicKeys, keysFile, contains string
	filtered                             bool
}

// verifyExportFile is usersd audit verify -file: audit.VerifyExport on the
// file with the keys given, a report on stdout, and an error (exit 1) when
// the export is not intact.
func verifyExportFile(e *env, f offlineFlags) error {
	if f.file == "" {
		return usageErrorf("-public-key, -keys, -filtered and -contains go with -file: the export to verify")
	}
	keys, err := offlineKeys(f)
	if err != nil {
		return err
	}
	var check audit.ExportCheck
	check.Filtered = f.filtered
	if f.contains != "" {
		k, err := audit.ParseKept("-contains", f.contains)
		if err != nil {
			return usageErrorf("-contains %q: want SEQ:HASH, an entry's seq and its hash (64 lower-case hex digits)", f.contains)
		}
		check.Contains = &k
	}
	var in io.Reader = os.Stdin
	if f.file != "-" {
		file, err := os.Open(f.file)
		if err != nil {
			return usageErrorf("-file: %v", err)
		}
		defer file.Close()
		in = file
	}
	rep, err := audit.VerifyExport(in, keys, check)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.file, err)
	}
	w := e.Stdout
	if !rep.OK {
		fmt.Fprintf(w, "%s: BROKEN", f.file)
		if rep.FirstBrokenSeq > 0 {
			fmt.Fprintf(w, " at seq %d", rep.FirstBrokenSeq)
		}
		fmt.Fprintf(w, " (line %d): %s\n", rep.FirstBrokenLine, rep.Problem)
		return fmt.Errorf("the export %s is not intact", f.file)
	}
	cp := rep.Checkpoint
	fmt.Fprintf(w, "%s: intact: workspace %s, %d entries\n", f.file, rep.WorkspaceID, rep.Entries)
	if rep.Complete {
		fmt.Fprintf(w, "  the whole chain from seq 1 to the checkpoint\n")
	} else {
		fmt.Fprintf(w, "  filtered: %d of the %d entries link to the checkpoint; the others check out on their own but nothing vouches for them\n", rep.Linked, rep.Entries)
	}
	fmt.Fprintf(w, "  checkpoint: seq %d, hash %s, signed by key %s (signedAt %s, which the signature does not cover)\n",
		cp.Seq, cp.Hash, cp.KeyID, cp.SignedAt.Format(time.RFC3339))
	if check.Contains != nil {
		fmt.Fprintf(w, "  holds seq %d with hash %s\n", check.Contains.Seq, check.Contains.Hash)
	}
	return nil
}

// offlineKeys reads the keys of -public-key and -keys.
func offlineKeys(f offlineFlags) ([]audit.Key, error) {
	pubs, err := parseList(f.publicKeys, audit.DecodeKey, func(_ int, part string, err error) error {
		return usageErrorf("-public-key %q: %v, as GET /v1/audit/keys shows publicKey", part, err)
	})
	if err != nil {
		return nil, err
	}
	keys := audit.PublicKeys(pubs...)
	if f.keysFile != "" {
		b, err := os.ReadFile(f.keysFile)
		if err != nil {
			return nil, usageErrorf("-keys: %v", err)
		}
		var served struct {
			Keys []audit.Key `json:"keys"`
		}
		if err := json.Unmarshal(b, &served); err != nil || len(served.Keys) == 0 {
			return nil, usageErrorf("-keys %s: want the answer of GET /v1/audit/keys, {\"keys\": [...]}", f.keysFile)
		}
		for _, k := range served.Keys {
			pub, err := audit.DecodeKey(k.PublicKey)
			if err != nil || k.Alg != audit.Alg || audit.KeyID(pub) != k.KeyID {
				return nil, usageErrorf("-keys %s: key %q is not an %s key whose keyId is that of its publicKey", f.keysFile, k.KeyID, audit.Alg)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, usageErrorf("-file needs the public key that signed the export: -public-key K (base64url) or -keys keys.json (GET /v1/audit/keys)")
	}
	return keys, nil
}
