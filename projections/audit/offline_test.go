package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
)

// export runs a signed NDJSON export of ws and answers its lines.
func export(t *testing.T, pool *pgxpool.Pool, ws uuid.UUID, f audit.Filter, s *audit.Signer) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := audit.ExportSigned(context.Background(), pool, plainKeys, ws, f, &buf, audit.FormatNDJSON, s); err != nil {
		t.Fatalf("ExportSigned: %v", err)
	}
	return strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func verifyLines(t *testing.T, lines []string, keys []audit.Key, opts audit.ExportCheck) audit.ExportReport {
	t.Helper()
	rep, err := audit.VerifyExport(strings.NewReader(strings.Join(lines, "")), keys, opts)
	if err != nil {
		t.Fatalf("VerifyExport: %v", err)
	}
	return rep
}

// TestExportEndsWithCheckpoint: an NDJSON export ends with the signed head
// of its last entry, and a CSV export has none.
func TestExportEndsWithCheckpoint(t *testing.T) {
	t.Parallel()
	pool, a, _, _ := appliedScenario(t)
	s := newSigner(t, seed(3))
	lines := export(t, pool, a, audit.Filter{}, s)
	if len(lines) != 7 {
		t.Fatalf("lines: got %d, want 6 entries and a checkpoint", len(lines))
	}
	var cp map[string]any
	if err := json.Unmarshal([]byte(lines[6]), &cp); err != nil {
		t.Fatal(err)
	}
	var last struct {
		Seq  float64 `json:"seq"`
		Hash string  `json:"hash"`
	}
	_ = json.Unmarshal([]byte(lines[5]), &last)
	if cp["type"] != "checkpoint" || cp["workspaceId"] != a.String() || cp["seq"] != last.Seq || cp["hash"] != last.Hash ||
		cp["keyId"] != s.KeyID() || cp["signedAt"] == nil || cp["signature"] == nil || len(cp) != 7 {
		t.Errorf("checkpoint line: got %v, want type checkpoint over seq %v hash %s, signed by %s", cp, last.Seq, last.Hash, s.KeyID())
	}
	var csv bytes.Buffer
	if err := audit.ExportSigned(context.Background(), pool, plainKeys, a, audit.Filter{}, &csv, audit.FormatCSV, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(csv.String(), "checkpoint") {
		t.Errorf("CSV export: got a checkpoint, want none")
	}
	if empty := export(t, pool, uuid.New(), audit.Filter{}, s); len(empty) != 1 || !strings.Contains(empty[0], `"seq":0,"hash":""`) {
		t.Errorf("export of no entries: got %q, want only a checkpoint over seq 0", empty)
	}
}

// TestVerifyExport: an intact export verifies offline, and each way of
// changing the file is caught and named.
func TestVerifyExport(t *testing.T) {
	t.Parallel()
	pool, a, b, _ := appliedScenario(t)
	s := newSigner(t, seed(3))
	lines := export(t, pool, a, audit.Filter{}, s)
	entries := all(t, pool, a)

	rep := verifyLines(t, lines, s.Keys(), audit.ExportCheck{})
	if !rep.OK || !rep.Complete || rep.Entries != 6 || rep.Linked != 6 || rep.WorkspaceID != a || rep.Checkpoint == nil || rep.Checkpoint.Seq != 6 {
		t.Fatalf("intact export: got %+v, want ok, complete, 6 entries linked to a checkpoint at seq 6", rep)
	}
	if empty := verifyLines(t, export(t, pool, uuid.New(), audit.Filter{}, s), s.Keys(), audit.ExportCheck{}); !empty.OK || empty.Entries != 0 {
		t.Errorf("export of no entries: got %+v, want ok", empty)
	}

	with := func(i int, line string) []string {
		out := append([]string(nil), lines...)
		out[i] = line
		return out
	}
	without := func(i int) []string {
		return append(append([]string(nil), lines[:i]...), lines[i+1:]...)
	}
	other := newSigner(t, seed(4))
	otherWS := export(t, pool, b, audit.Filter{}, s)
	cases := []struct {
		name     string
		lines    []string
		keys     []audit.Key
		wantSeq  int64
		wantText string
	}{
		{"actor changed", with(1, strings.ReplaceAll(lines[1], entries[1].Actor.Email, "mallory@example.test")), s.Keys(), 2, "does not match its hash"},
		{"details changed", with(4, strings.ReplaceAll(lines[4], `"toRole":"Admin"`, `"toRole":"Monitor"`)), s.Keys(), 5, "does not match its hash"},
		// The values shown, not hashed, must agree with those stored where
		// they are plain.
		{"shown actor changed", with(1, strings.Replace(lines[1], entries[1].Actor.Email, "mallory@example.test", 1)), s.Keys(), 2, "is shown as"},
		{"shown details changed", with(4, strings.Replace(lines[4], `"toRole":"Admin"`, `"toRole":"Monitor"`, 1)), s.Keys(), 5, `details "toRole" shown`},
		{"null made empty", with(0, strings.Replace(lines[0], `"causationId":null`, `"causationId":""`, 1)), s.Keys(), 1, "does not match its hash"},
		{"middle entry removed", without(2), s.Keys(), 4, "entries 3 to 3 are not in the export"},
		{"last entry removed", without(5), s.Keys(), 5, "cut from the end"},
		{"checkpoint removed", lines[:6], s.Keys(), 0, "no checkpoint"},
		{"end cut with its checkpoint", lines[:4], s.Keys(), 0, "no checkpoint"},
		{"another key", lines, other.Keys(), 0, "not signed by a key given"},
		{"checkpoint of another workspace", append(append([]string(nil), lines[:6]...), otherWS[len(otherWS)-1]), s.Keys(), 0, "is for workspace"},
		{"entries swapped", append([]string{lines[1], lines[0]}, lines[2:]...), s.Keys(), 2, "entries 1 to 1 are not in the export"},
		{"entries out of order", append(append([]string(nil), lines[:3]...), lines[1], lines[6]), s.Keys(), 2, "increasing seq order"},
		{"a line after the checkpoint", append(append([]string(nil), lines...), "\n"+lines[5]), s.Keys(), 0, "after the checkpoint"},
		{"a name twice", with(1, strings.Replace(lines[1], `{"seq":2,`, `{"seq":2,"seq":2,`, 1)), s.Keys(), 0, "given twice"},
		{"not JSON", with(1, "hello\n"), s.Keys(), 0, "not JSON"},
	}
	// An export made before sealing has no "sealed" values: its values
	// shown are those stored, and it still verifies.
	old := make([]string, len(lines))
	for i, l := range lines {
		if at := strings.Index(l, `,"sealed":`); at >= 0 {
			l = l[:at] + "}\n"
		}
		old[i] = strings.NewReplacer(`,"erased":false`, "").Replace(l)
	}
	if rep := verifyLines(t, old, s.Keys(), audit.ExportCheck{}); !rep.OK || rep.Entries != 6 {
		t.Errorf("export in the format from before sealing: got %+v, want ok", rep)
	}
	for _, c := range cases {
		rep := verifyLines(t, c.lines, c.keys, audit.ExportCheck{})
		if rep.OK || rep.FirstBrokenSeq != c.wantSeq || !strings.Contains(rep.Problem, c.wantText) {
			t.Errorf("%s: got ok=%v seq=%d problem %q, want broken at seq %d with %q", c.name, rep.OK, rep.FirstBrokenSeq, rep.Problem, c.wantSeq, c.wantText)
		}
	}
}

// TestVerifyFilteredExport: a filtered export's checkpoint is over its last
// entry; with Filtered its gaps are accepted and only the entries linked to
// the checkpoint are vouched for; without, a gap is a break.
func TestVerifyFilteredExport(t *testing.T) {
	t.Parallel()
	pool, a, _, _ := appliedScenario(t)
	s := newSigner(t, seed(3))
	// Entries of a: 1 WorkspaceCreated (the owner), 2 UserInvited, 3 sent,
	// 4 accepted, 5 RoleChanged, 6 UserLoggedIn (by the invitee).
	entries := all(t, pool, a)
	lines := export(t, pool, a, audit.Filter{Actor: entries[3].Actor.ID}, s) // 4 and 6
	if len(lines) != 3 {
		t.Fatalf("filtered export: got %d lines, want 2 entries and a checkpoint", len(lines))
	}
	if !strings.Contains(lines[2], `"seq":6,"hash":"`+entries[5].Hash+`"`) {
		t.Errorf("filtered export's checkpoint: got %s, want it over seq 6, its last entry", lines[2])
	}
	rep := verifyLines(t, lines, s.Keys(), audit.ExportCheck{Filtered: true})
	if !rep.OK || rep.Complete || rep.Entries != 2 || rep.Linked != 1 {
		t.Errorf("filtered export, declared: got %+v, want ok, not complete, 1 of 2 entries linked", rep)
	}
	if rep := verifyLines(t, lines, s.Keys(), audit.ExportCheck{}); rep.OK || rep.FirstBrokenSeq != 4 {
		t.Errorf("filtered export, not declared: got %+v, want broken at seq 4 (a gap from the start)", rep)
	}
	tampered := append([]string(nil), lines...)
	tampered[0] = strings.Replace(tampered[0], `"Ivy"`, `"Eve"`, 1)
	if rep := verifyLines(t, tampered, s.Keys(), audit.ExportCheck{Filtered: true}); rep.OK || rep.FirstBrokenSeq != 4 {
		t.Errorf("filtered export with an entry changed: got %+v, want broken at seq 4", rep)
	}
}

// TestForgedAuditRowIsDetected is the second forgery of issue 15: the
// database's owner disarms the append-only trigger, changes who did
// something, and rehashes the chain from there on so that it verifies
// again. The signed checkpoint of an export taken before catches it, both
// online (verify?contains) and offline (a later export checked for the
// kept entry); the earlier export itself still verifies offline. Without
// the rehash, verify alone catches it.
func TestForgedAuditRowIsDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, a, _, events := appliedScenario(t)
	s := newSigner(t, seed(5))
	before := export(t, pool, a, audit.Filter{}, s)
	rep := verifyLines(t, before, s.Keys(), audit.ExportCheck{})
	if !rep.OK {
		t.Fatalf("the export before: %+v", rep)
	}
	kept := audit.Kept{Seq: rep.Checkpoint.Seq, Hash: rep.Checkpoint.Hash}

	// Without rehashing: verify names the entry.
	tamper(t, pool, `UPDATE audit_entries SET actor_email = 'mallory@example.test' WHERE workspace_id = $1 AND seq = 5`, a)
	if res := verify(t, pool, a); res.OK || res.FirstBrokenSeq == nil || *res.FirstBrokenSeq != 5 {
		t.Errorf("Verify after an edit of seq 5: got %+v, want broken at 5", res)
	}

	// With rehashing: the forged history, chained afresh (as the owner
	// could, with the documented encoding), replaces the live entries.
	forged := append([]domain.RecordedEvent(nil), events...)
	forged[6].Metadata.Actor = domain.Actor{UserID: uuid.New(), Email: "mallory@example.test"} // the RoleChanged, seq 5 of a
	createSchema(t, pool, "forged")
	applyIn(t, pool, "forged", forged)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DROP TRIGGER audit_entries_no_update_delete ON audit_entries`,
			`DELETE FROM audit_entries WHERE workspace_id = $1`,
			`INSERT INTO audit_entries SELECT * FROM forged.audit_entries WHERE workspace_id = $1`,
		} {
			var args []any
			if strings.Contains(q, "$1") {
				args = []any{a}
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res := verify(t, pool, a); !res.OK {
		t.Fatalf("precondition: the rehashed forgery verifies on its own, got %+v", res)
	}
	res, err := audit.VerifyKept(ctx, pool, a, &kept)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Missing == nil || !*res.Missing {
		t.Errorf("VerifyKept with the earlier checkpoint: got %+v, want ok false, missing true", res)
	}
	after := export(t, pool, a, audit.Filter{}, s)
	if rep := verifyLines(t, after, s.Keys(), audit.ExportCheck{}); !rep.OK {
		t.Fatalf("precondition: the forged chain, exported and signed today, verifies alone: %+v", rep)
	}
	rep = verifyLines(t, after, s.Keys(), audit.ExportCheck{Contains: &kept})
	if rep.OK || rep.FirstBrokenSeq != kept.Seq || !strings.Contains(rep.Problem, "rewritten or cut") {
		t.Errorf("a later export checked for the earlier checkpoint: got %+v, want broken at seq %d", rep, kept.Seq)
	}
	if rep := verifyLines(t, before, s.Keys(), audit.ExportCheck{Contains: &kept}); !rep.OK {
		t.Errorf("the earlier export, offline: got %+v, want it still intact", rep)
	}
}
