package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Signed heads. A chain's hashes prove that entries were not changed
// without rehashing the rest, but anyone who can write to the database can
// rehash. So the service signs heads (workspace, seq, hash) with an Ed25519
// key that never enters the database: a signed head is a statement "the
// chain of this workspace held entry seq with this hash", which an auditor
// keeps and checks later, offline (VerifyExport) or against today's chain
// (Verify with Contains), with only the public key.
//
// The signature covers the UTF-8 bytes of
//
//	usersd-audit-head\n{workspaceId}\n{seq}\n{hash}
//
// (HeadMessage): the workspace id in its lower-case 8-4-4-4-12 form, seq in
// decimal, hash in lower-case hex. signedAt travels beside the signature
// and is not covered by it: it says when the service signed, and nothing
// more can be read into it. Seq 0 with hash "" is the empty chain, which
// every chain holds.

// Alg names the signature algorithm of every key.
const Alg = "Ed25519"

// headDomain opens every signed message, so that a signature over a head
// can never be taken for one over anything else.
const headDomain = "usersd-audit-head"

// SeedSize is the size of a signing key's seed (USERSD_AUDIT_SIGNING_KEY).
const SeedSize = ed25519.SeedSize

// Key is a public key as GET /v1/audit/keys publishes it.
type Key struct {
	KeyID string `json:"keyId"`
	Alg   string `json:"alg"`
	// PublicKey is the 32-byte Ed25519 public key, base64url without
	// padding.
	PublicKey string `json:"publicKey"`
	// Current is true for the key that signs today; the others signed
	// before a rotation and stay published so that their signatures can
	// still be checked.
	Current bool `json:"current"`
}

// Head is where a workspace's chain stands: its last entry's seq and hash;
// seq 0 and hash "" for a chain without entries.
type Head struct {
	WorkspaceID uuid.UUID
	Seq         int64
	Hash        string
}

// SignedHead is a head with its signature, as GET .../audit/head answers
// it and as the checkpoint line of an NDJSON export carries it.
type SignedHead struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	Seq         int64     `json:"seq"`
	Hash        string    `json:"hash"`
	SignedAt    time.Time `json:"signedAt"`
	KeyID       string    `json:"keyId"`
	// Signature is the Ed25519 signature of HeadMessage, base64url without
	// padding.
	Signature string `json:"signature"`
}

// Head returns the head the signature is about.
func (s SignedHead) Head() Head { return Head{WorkspaceID: s.WorkspaceID, Seq: s.Seq, Hash: s.Hash} }

// HeadMessage is what a signature over h covers.
func HeadMessage(h Head) []byte {
	b := make([]byte, 0, len(headDomain)+1+36+1+20+1+len(h.Hash))
	b = append(b, headDomain...)
	b = append(b, '\n')
	b = appendUUID(b, h.WorkspaceID)
	b = append(b, '\n')
	b = strconv.AppendInt(b, h.Seq, 10)
	b = append(b, '\n')
	return append(b, h.Hash...)
}

// KeyID names a public key: the first 8 bytes of its SHA-256, base64url
// without padding (11 characters).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:8])
}

// Signer signs heads with the current key and publishes it with the keys
// that signed before.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
	keys  []Key
}

// NewSigner makes the signer of the 32-byte seed, which also publishes the
// previous public keys (after a rotation), current first. A previous key
// equal to the current one, or given twice, is published once.
func NewSigner(seed []byte, previous ...ed25519.PublicKey) (*Signer, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("an Ed25519 seed is %d bytes, got %d", SeedSize, len(seed))
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	s := &Signer{key: key, keyID: KeyID(pub)}
	s.keys = append(s.keys, Key{KeyID: s.keyID, Alg: Alg, PublicKey: EncodeKey(pub), Current: true})
	seen := map[string]bool{s.keyID: true}
	for _, p := range previous {
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("an Ed25519 public key is %d bytes, got %d", ed25519.PublicKeySize, len(p))
		}
		if id := KeyID(p); !seen[id] {
			seen[id] = true
			s.keys = append(s.keys, Key{KeyID: id, Alg: Alg, PublicKey: EncodeKey(p)})
		}
	}
	return s, nil
}

// Keys lists the published keys, the current one first.
func (s *Signer) Keys() []Key { return append([]Key(nil), s.keys...) }

// KeyID names the current key.
func (s *Signer) KeyID() string { return s.keyID }

// Sign signs h at the time at: one Ed25519 signature, nothing read.
func (s *Signer) Sign(h Head, at time.Time) SignedHead {
	sig := ed25519.Sign(s.key, HeadMessage(h))
	return SignedHead{
		WorkspaceID: h.WorkspaceID, Seq: h.Seq, Hash: h.Hash,
		SignedAt: at.UTC().Truncate(time.Millisecond), KeyID: s.keyID,
		Signature: base64.RawURLEncoding.EncodeToString(sig),
	}
}

// EncodeKey is a public key in its published form: base64url without
// padding.
func EncodeKey(pub ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(pub) }

// DecodeKey reads a public key in its published form (a trailing "="
// padding is tolerated).
func DecodeKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeBase64URL(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not an Ed25519 public key (%d bytes, base64url)", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// DecodeSeed reads a signing key's seed: 32 bytes, base64url (a trailing
// "=" padding is tolerated).
func DecodeSeed(s string) ([]byte, error) {
	b, err := decodeBase64URL(s)
	if err != nil || len(b) != SeedSize {
		return nil, fmt.Errorf("not an Ed25519 seed (%d bytes, base64url)", SeedSize)
	}
	return b, nil
}

func decodeBase64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
}

// Errors of VerifyHead.
var (
	ErrUnknownKey   = errors.New("signed by a key that is not among the keys given")
	ErrBadSignature = errors.New("the signature does not match the head")
)

// VerifyHead checks the signature of h with the key of h's key id among
// keys: nil when it holds.
func VerifyHead(h SignedHead, keys []Key) error {
	var pub ed25519.PublicKey
	for _, k := range keys {
		if k.KeyID != h.KeyID {
			continue
		}
		p, err := DecodeKey(k.PublicKey)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.KeyID, err)
		}
		if KeyID(p) != k.KeyID {
			return fmt.Errorf("key %s: its id is not that of its public key (%s)", k.KeyID, KeyID(p))
		}
		pub = p
		break
	}
	if pub == nil {
		return fmt.Errorf("key %q: %w", h.KeyID, ErrUnknownKey)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(h.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, HeadMessage(h.Head()), sig) {
		return ErrBadSignature
	}
	return nil
}

// PublicKeys makes the published form of bare public keys, none current:
// what an auditor who holds only keys (usersd audit verify -public-key)
// verifies with.
func PublicKeys(pubs ...ed25519.PublicKey) []Key {
	keys := make([]Key, len(pubs))
	for i, p := range pubs {
		keys[i] = Key{KeyID: KeyID(p), Alg: Alg, PublicKey: EncodeKey(p)}
	}
	return keys
}
