package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/projectionstest"
)

// auditExport writes a signed NDJSON export of a small workspace's audit
// history into dir and answers its path and the signer. The history is
// sealed, and Ivy's account erased before the export: what an auditor gets
// after an account's deletion.
func auditExport(t *testing.T, dir string) (string, *audit.Signer) {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.New(t)
	ws, owner, ivy := uuid.New(), uuid.New(), uuid.New()
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	var recs []domain.RecordedEvent
	for i, ev := range []domain.Event{
		domain.WorkspaceCreated{WorkspaceID: ws, Name: "Offline", OwnerUserID: owner, OwnerEmail: "ada@offline.test", OwnerName: "Ada", CreatedAt: at},
		domain.UserInvited{WorkspaceID: ws, InvitationID: uuid.New(), UserID: ivy, Email: "ivy@offline.test", Role: "Editor", InvitedBy: owner, InviterRole: "Admin", InvitedAt: at, ExpiresAt: at.Add(time.Hour)},
		domain.InvitationAccepted{WorkspaceID: ws, UserID: ivy, Email: "ivy@offline.test", Name: "Ivy", Role: "Editor", AcceptedAt: at},
		domain.RoleChanged{WorkspaceID: ws, UserID: ivy, Email: "ivy@offline.test", FromRole: "Editor", ToRole: "Manager", ChangedBy: owner},
	} {
		recs = append(recs, domain.RecordedEvent{
			Envelope: domain.Envelope{Event: ev, Metadata: domain.Metadata{EventID: uuid.New(), SchemaVersion: 1,
				OccurredAt: at.Add(time.Duration(i) * time.Minute), Actor: domain.Actor{UserID: owner, Email: "ada@offline.test"}}},
			StreamID: "workspace-" + ws.String(), Revision: uint64(i), Position: domain.Position{Commit: uint64(10 + i), Prepare: uint64(10 + i)},
		})
	}
	keys := pii.NewMemoryKeyring()
	projectionstest.SealAll(t, keys, recs)
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return audit.New().Apply(ctx, tx, recs) }); err != nil {
		t.Fatal(err)
	}
	if err := keys.Destroy(ctx, ivy); err != nil {
		t.Fatal(err)
	}
	signer, err := audit.NewSigner(bytes.Repeat([]byte{7}, audit.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := audit.ExportSigned(ctx, pool, keys, ws, audit.Filter{}, &buf, audit.FormatNDJSON, signer); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "ivy@offline.test") || !strings.Contains(buf.String(), "ada@offline.test") || !strings.Contains(buf.String(), `"erased":true`) {
		t.Fatalf("export after Ivy's erasure: want Ada's address opened and Ivy erased, got:\n%s", buf.String())
	}
	path := filepath.Join(dir, "export.ndjson")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, signer
}

// TestAuditVerifyFile: usersd audit verify -file checks an export with no
// database (DATABASE_URL points nowhere), exits 0 when it is intact, 1
// naming the first broken entry, 2 on a usage error.
func TestAuditVerifyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, signer := auditExport(t, dir)
	pub := signer.Keys()[0].PublicKey
	keysFile := filepath.Join(dir, "keys.json")
	served, _ := json.Marshal(map[string]any{"keys": signer.Keys()})
	if err := os.WriteFile(keysFile, served, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(raw), "\n")
	write := func(name string, ls ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(ls, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edited := write("edited.ndjson", append([]string{lines[0], strings.Replace(lines[1], `"role":"Editor"`, `"role":"Admin"`, 1)}, lines[2:]...)...)
	cut := write("cut.ndjson", lines[:3]...)
	var lastEntry struct {
		Seq  int64
		Hash string
	}
	_ = json.Unmarshal([]byte(lines[3]), &lastEntry)
	kept := "4:" + lastEntry.Hash
	otherKey := "8BlUlsnZ3NXOTN6qMf6dFBDPQnq6f8Q1eHtzMXwdTLM"
	nowhere := map[string]string{envDatabaseURL: "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=1"}

	for _, c := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"intact, with -public-key", []string{"audit", "verify", "-file", path, "-public-key", pub}, exitOK, "intact: workspace", ""},
		{"intact, with -keys", []string{"audit", "verify", "-file", path, "-keys", keysFile}, exitOK, "the whole chain from seq 1", ""},
		{"intact, holding a kept entry", []string{"audit", "verify", "-file", path, "-public-key", pub, "-contains", kept}, exitOK, "holds seq 4", ""},
		{"an entry edited", []string{"audit", "verify", "-file", edited, "-public-key", pub}, exitFailure, "BROKEN at seq 2 (line 2)", "not intact"},
		{"cut at the end", []string{"audit", "verify", "-file", cut, "-public-key", pub}, exitFailure, "no checkpoint line", ""},
		{"signed by another key", []string{"audit", "verify", "-file", path, "-public-key", otherKey}, exitFailure, "not signed by a key given", ""},
		{"a kept entry not held", []string{"audit", "verify", "-file", path, "-public-key", pub, "-contains", "4:" + strings.Repeat("0", 64)}, exitFailure, "rewritten or cut", ""},
		{"no key", []string{"audit", "verify", "-file", path}, exitUsage, "", "-public-key K"},
		{"a bad key", []string{"audit", "verify", "-file", path, "-public-key", "abc"}, exitUsage, "", "not an Ed25519 public key"},
		{"no such file", []string{"audit", "verify", "-file", filepath.Join(dir, "nope"), "-public-key", pub}, exitUsage, "", "-file"},
		{"a key without a file", []string{"audit", "verify", "-public-key", pub}, exitUsage, "", "go with -file"},
		{"with -workspace", []string{"audit", "verify", "-file", path, "-public-key", pub, "-workspace", uuid.NewString()}, exitUsage, "", "do not go with it"},
		{"a bad -contains", []string{"audit", "verify", "-file", path, "-public-key", pub, "-contains", "4"}, exitUsage, "", "want SEQ:HASH"},
	} {
		got := runUsersd(t, nowhere, c.args...)
		if got.code != c.wantCode || !strings.Contains(got.stdout, c.wantStdout) || !strings.Contains(got.stderr, c.wantStderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q on stdout, %q on stderr",
				c.name, got.code, got.stdout, got.stderr, c.wantCode, c.wantStdout, c.wantStderr)
		}
	}
}
