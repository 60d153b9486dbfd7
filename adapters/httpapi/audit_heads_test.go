package httpapi_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/usersd/usersd/projections/audit"
)

// TestSignedAuditHeads: the keys are published to anyone; the head is
// signed with the current one over the chain's last entry; verify answers
// whether a kept entry is still in the chain; an NDJSON export ends with a
// checkpoint that verifies offline with the published keys.
func TestSignedAuditHeads(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, owner, _ := a.createWorkspace(t, "Heads", "admin@heads.test")
	admin := userToken(owner)
	_, pos := a.join(t, ws, admin, "ed@heads.test", "Editor")
	base := "/v1/workspaces/" + ws.String() + "/audit"

	var keys struct{ Keys []audit.Key }
	a.must(t, 200, req{method: "GET", path: "/v1/audit/keys"}).json(t, &keys)
	if len(keys.Keys) != 1 || keys.Keys[0].KeyID != testSigner.KeyID() || !keys.Keys[0].Current {
		t.Fatalf("GET /v1/audit/keys: got %+v, want the test signer's key, current", keys)
	}

	var head audit.SignedHead
	a.must(t, 200, req{method: "GET", path: base + "/head", token: admin, headers: consistent(pos)}).json(t, &head)
	var page struct {
		Items []struct {
			Seq  int64
			Hash string
		}
	}
	a.must(t, 200, req{method: "GET", path: base + "?limit=1", token: admin, headers: consistent(pos)}).json(t, &page)
	if len(page.Items) != 1 || head.WorkspaceID != ws || head.Seq != page.Items[0].Seq || head.Hash != page.Items[0].Hash {
		t.Fatalf("head: got %+v, want the newest entry %+v", head, page.Items)
	}
	if err := audit.VerifyHead(head, keys.Keys); err != nil {
		t.Errorf("the head's signature with the published keys: %v", err)
	}

	type verifyResult struct {
		OK      bool  `json:"ok"`
		Missing *bool `json:"missing"`
	}
	var v verifyResult
	a.must(t, 200, req{method: "GET", path: base + "/verify?contains=" + strconv.FormatInt(head.Seq, 10) + ":" + head.Hash, token: admin}).json(t, &v)
	if !v.OK || v.Missing == nil || *v.Missing {
		t.Errorf("verify?contains= the head: got %+v, want ok, missing false", v)
	}
	v = verifyResult{}
	a.must(t, 200, req{method: "GET", path: base + "/verify?contains=" + strconv.FormatInt(head.Seq+1, 10) + ":" + head.Hash, token: admin}).json(t, &v)
	if v.OK || v.Missing == nil || !*v.Missing {
		t.Errorf("verify?contains= an entry the chain does not hold: got %+v, want ok false, missing true", v)
	}
	for _, bad := range []string{"", "1", "x:" + head.Hash, "1:" + strings.ToUpper(head.Hash), "0:" + head.Hash} {
		r := a.must(t, 400, req{method: "GET", path: base + "/verify?contains=" + bad, token: admin})
		if r.code() != "invalid_input" || !strings.Contains(string(r.body), `"field":"contains"`) {
			t.Errorf("verify?contains=%s: got %s, want 400 invalid_input naming contains", bad, r.body)
		}
	}

	r := a.must(t, 200, req{method: "GET", path: base, token: admin, headers: map[string]string{"Accept": "application/x-ndjson", "X-Consistent-With": pos}})
	lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"type":"checkpoint"`) {
		t.Errorf("the export's last line: got %s, want the checkpoint", last)
	}
	rep, err := audit.VerifyExport(bytes.NewReader(r.body), keys.Keys, audit.ExportCheck{Contains: &audit.Kept{Seq: head.Seq, Hash: head.Hash}})
	if err != nil || !rep.OK || !rep.Complete || rep.Entries != int(head.Seq) {
		t.Errorf("offline verification of the export: got %+v, %v; want ok and complete with %d entries", rep, err, head.Seq)
	}
}
