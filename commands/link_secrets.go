package commands

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// LinkSecrets derives the secret of an invitation link from the invitation
// and the attempt (the e-mail) it belongs to. The secret is never stored:
// the command side derives it to compute the hash the event keeps, and the
// mailer derives it again to build the link, so neither the events, the
// outbox nor a log ever hold a usable token.
type LinkSecrets interface {
	// Secret answers domain.SecretSize bytes, the same for the same
	// arguments.
	Secret(workspace, invitation uuid.UUID, attempt int) []byte
}

// MinTokenKeySize is the shortest key HMACLinkSecrets accepts: 256 bits.
const MinTokenKeySize = 32

// linkLabel separates link secrets from any other use of the key.
const linkLabel = "usersd invitation link v1\x00"

// HMACLinkSecrets derives link secrets as HMAC-SHA256(key, label ‖
// workspace ‖ invitation ‖ attempt). Whoever holds the key can make every
// link, so it is as secret as the JWT secret.
type HMACLinkSecrets struct{ key []byte }

// NewHMACLinkSecrets returns the derivation under key, which must be at
// least MinTokenKeySize bytes.
func NewHMACLinkSecrets(key []byte) (HMACLinkSecrets, error) {
	if len(key) < MinTokenKeySize {
		return HMACLinkSecrets{}, fmt.Errorf("a link key must be at least %d bytes, got %d", MinTokenKeySize, len(key))
	}
	return HMACLinkSecrets{key: append([]byte(nil), key...)}, nil
}

func (s HMACLinkSecrets) Secret(workspace, invitation uuid.UUID, attempt int) []byte {
	if len(s.key) == 0 {
		panic("commands: HMACLinkSecrets used without a key; use NewHMACLinkSecrets")
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(linkLabel))
	m.Write(workspace[:])
	m.Write(invitation[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(attempt))
	m.Write(n[:])
	return m.Sum(nil) // 32 bytes: domain.SecretSize
}

// tokenKeyLabel makes the default link key differ from the JWT secret it is
// derived from, so that neither can be computed from the other's uses.
const tokenKeyLabel = "usersd token key v1"

// DeriveTokenKey makes a link key from another secret (the JWT secret) when
// no key of its own is configured.
func DeriveTokenKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenKeyLabel))
	return m.Sum(nil)
}

// InvitationLinkToken is the token of the link of one attempt of an
// invitation, as the e-mail carries it.
func InvitationLinkToken(s LinkSecrets, workspace, invitation uuid.UUID, attempt int) string {
	return domain.InvitationToken{WorkspaceID: workspace, InvitationID: invitation, Secret: s.Secret(workspace, invitation, attempt)}.String()
}

// secret derives a link secret and checks its size, so that a faulty
// LinkSecrets is refused before anything is stored.
func (d Deps) secret(workspace, invitation uuid.UUID, attempt int) ([]byte, error) {
	b := d.Secrets.Secret(workspace, invitation, attempt)
	if len(b) != domain.SecretSize {
		return nil, fmt.Errorf("link secret of %d bytes, want %d", len(b), domain.SecretSize)
	}
	return b, nil
}

// EphemeralLinkSecrets derives under a random key that lives as long as the
// process: for tests and benchmarks only, since a link made by one process
// is worth nothing to another.
func EphemeralLinkSecrets() HMACLinkSecrets {
	key := make([]byte, MinTokenKeySize)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("commands: read a random link key: %v", err))
	}
	return HMACLinkSecrets{key: key}
}
