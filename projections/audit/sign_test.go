package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections/audit"
)

func seed(b byte) []byte { return bytes.Repeat([]byte{b}, audit.SeedSize) }

func newSigner(t testing.TB, s []byte, previous ...ed25519.PublicKey) *audit.Signer {
	t.Helper()
	signer, err := audit.NewSigner(s, previous...)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return signer
}

// TestSignedHeadMessage: the signature covers exactly the message api.md
// documents, checked with crypto/ed25519 alone, and the key id is the
// first 8 bytes of the public key's SHA-256, base64url.
func TestSignedHeadMessage(t *testing.T) {
	t.Parallel()
	s := newSigner(t, seed(1))
	pub := ed25519.NewKeyFromSeed(seed(1)).Public().(ed25519.PublicKey)
	ws := uuid.MustParse("0b8d5f8e-6c53-4d6f-9a57-3f3c1b8a9e01")
	hash := strings.Repeat("ab", 32)
	sh := s.Sign(audit.Head{WorkspaceID: ws, Seq: 42, Hash: hash}, time.Now())

	sig, err := base64.RawURLEncoding.DecodeString(sh.Signature)
	if err != nil {
		t.Fatalf("signature %q: not base64url: %v", sh.Signature, err)
	}
	msg := "usersd-audit-head\n0b8d5f8e-6c53-4d6f-9a57-3f3c1b8a9e01\n42\n" + hash
	if !ed25519.Verify(pub, []byte(msg), sig) {
		t.Errorf("signature does not verify over %q", msg)
	}
	sum := sha256.Sum256(pub)
	if want := base64.RawURLEncoding.EncodeToString(sum[:8]); sh.KeyID != want || audit.KeyID(pub) != want {
		t.Errorf("key id: got %q, want %q", sh.KeyID, want)
	}
	keys := s.Keys()
	if len(keys) != 1 || keys[0].PublicKey != base64.RawURLEncoding.EncodeToString(pub) || !keys[0].Current || keys[0].Alg != "Ed25519" {
		t.Errorf("keys: got %+v, want the one current Ed25519 key", keys)
	}
	if err := audit.VerifyHead(sh, keys); err != nil {
		t.Errorf("VerifyHead of a fresh signature: %v", err)
	}
}

func TestVerifyHeadRefuses(t *testing.T) {
	t.Parallel()
	s := newSigner(t, seed(1))
	good := s.Sign(audit.Head{WorkspaceID: uuid.New(), Seq: 7, Hash: strings.Repeat("0", 64)}, time.Now())
	other := newSigner(t, seed(2))
	for _, c := range []struct {
		name   string
		change func(*audit.SignedHead)
		keys   []audit.Key
		want   error
	}{
		{"seq changed", func(h *audit.SignedHead) { h.Seq = 6 }, s.Keys(), audit.ErrBadSignature},
		{"hash changed", func(h *audit.SignedHead) { h.Hash = strings.Repeat("1", 64) }, s.Keys(), audit.ErrBadSignature},
		{"workspace changed", func(h *audit.SignedHead) { h.WorkspaceID = uuid.New() }, s.Keys(), audit.ErrBadSignature},
		{"signature garbled", func(h *audit.SignedHead) { h.Signature = garble(h.Signature) }, s.Keys(), audit.ErrBadSignature},
		{"another key's id", func(h *audit.SignedHead) { h.KeyID = other.KeyID() }, other.Keys(), audit.ErrBadSignature},
		{"key not given", func(*audit.SignedHead) {}, other.Keys(), audit.ErrUnknownKey},
	} {
		h := good
		c.change(&h)
		if err := audit.VerifyHead(h, c.keys); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRotationKeepsOldSignaturesCheckable: after a rotation the previous
// public key is still published, so heads it signed still verify.
func TestRotationKeepsOldSignaturesCheckable(t *testing.T) {
	t.Parallel()
	old := newSigner(t, seed(1))
	oldPub := ed25519.NewKeyFromSeed(seed(1)).Public().(ed25519.PublicKey)
	signed := old.Sign(audit.Head{WorkspaceID: uuid.New(), Seq: 1, Hash: strings.Repeat("c", 64)}, time.Now())

	rotated := newSigner(t, seed(2), oldPub, oldPub)
	keys := rotated.Keys()
	if len(keys) != 2 || !keys[0].Current || keys[1].Current || keys[1].KeyID != old.KeyID() {
		t.Fatalf("keys after rotation: got %+v, want the new key current, then the old one once", keys)
	}
	if err := audit.VerifyHead(signed, keys); err != nil {
		t.Errorf("a head signed before the rotation: got %v, want it to verify", err)
	}
	if got := rotated.Sign(signed.Head(), time.Now()); got.KeyID == old.KeyID() || audit.VerifyHead(got, keys) != nil {
		t.Errorf("a head signed after the rotation: got key %q, want the new key's and a valid signature", got.KeyID)
	}
	if _, err := audit.NewSigner(seed(1)[:31]); err == nil {
		t.Error("NewSigner with a 31-byte seed: got no error")
	}
}

// TestReadHeadAndVerifyKept: the head is the last entry; an entry kept from
// it is found today, and missing once the chain is cut below it.
func TestReadHeadAndVerifyKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, a, _, _ := appliedScenario(t)
	head, err := audit.ReadHead(ctx, pool, a)
	if err != nil {
		t.Fatal(err)
	}
	entries := all(t, pool, a)
	last := entries[len(entries)-1]
	if head.Seq != last.Seq || head.Hash != last.Hash || head.WorkspaceID != a {
		t.Errorf("ReadHead: got %+v, want seq %d hash %s", head, last.Seq, last.Hash)
	}
	if empty, err := audit.ReadHead(ctx, pool, uuid.New()); err != nil || empty.Seq != 0 || empty.Hash != "" {
		t.Errorf("ReadHead of a workspace without entries: got %+v, %v; want seq 0, hash \"\"", empty, err)
	}

	check := func(name string, kept audit.Kept, wantOK, wantMissing bool) {
		t.Helper()
		res, err := audit.VerifyKept(ctx, pool, a, &kept)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK != wantOK || res.Missing == nil || *res.Missing != wantMissing {
			t.Errorf("%s: got ok=%v missing=%v, want ok=%v missing=%v", name, res.OK, res.Missing, wantOK, wantMissing)
		}
	}
	check("the head", audit.Kept{Seq: head.Seq, Hash: head.Hash}, true, false)
	check("an earlier entry", audit.Kept{Seq: 2, Hash: entries[1].Hash}, true, false)
	check("another hash", audit.Kept{Seq: 2, Hash: entries[2].Hash}, false, true)
	check("beyond the head", audit.Kept{Seq: head.Seq + 1, Hash: head.Hash}, false, true)
	check("the empty chain's head", audit.Kept{}, true, false)
	if res := verify(t, pool, a); res.Missing != nil {
		t.Errorf("Verify without a kept entry: got missing=%v, want it absent", *res.Missing)
	}

	tamper(t, pool, `DELETE FROM audit_entries WHERE workspace_id = $1 AND seq >= 5`, a)
	if res := verify(t, pool, a); !res.OK {
		t.Fatalf("precondition: a chain cut at its end still verifies alone, got %+v", res)
	}
	check("the head after the end was cut", audit.Kept{Seq: head.Seq, Hash: head.Hash}, false, true)
}

func TestParseKept(t *testing.T) {
	t.Parallel()
	hash := strings.Repeat("0a", 32)
	if got, err := audit.ParseKept("contains", "12:"+hash); err != nil || !reflect.DeepEqual(got, audit.Kept{Seq: 12, Hash: hash}) {
		t.Errorf("ParseKept(12:hash): got %+v, %v", got, err)
	}
	if got, err := audit.ParseKept("contains", "0:"); err != nil || got != (audit.Kept{}) {
		t.Errorf("ParseKept(0:), the signed head of an empty chain: got %+v, %v; want seq 0, hash \"\"", got, err)
	}
	for _, bad := range []string{"", "12", "12:", ":" + hash, "0:" + hash, "0", "00:", "-0:", "-1:" + hash, "012:" + hash, "+12:" + hash,
		"12:" + strings.ToUpper(hash), "12:" + hash[:62], "12:" + hash + "00", "12:" + hash + ":x", "99999999999999999999:" + hash} {
		if _, err := audit.ParseKept("contains", bad); err == nil || !strings.Contains(err.Error(), "{seq}:{hash}") {
			t.Errorf("ParseKept(%q): got %v, want a refusal naming the form", bad, err)
		}
	}
}

// garble changes the first character of a base64url text to another
// (always a change: "x" would leave one that starts with "x" as it was).
func garble(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}
