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
//
// Deriving cannot fail and is pure (the same secret for the same arguments,
// always of domain.SecretSize bytes), so a decision may derive a secret.
type LinkSecrets interface {
	Secret(workspace, invitation uuid.UUID, attempt int) [domain.SecretSize]byte
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

func (s HMACLinkSecrets) Secret(workspace, invitation uuid.UUID, attempt int) [domain.SecretSize]byte {
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
	var out [domain.SecretSize]byte
	copy(out[:], m.Sum(nil))
	return out
}

// An HMAC-SHA256 is exactly one secret: this fails to compile otherwise.
const _ = uint(domain.SecretSize-sha256.Size) + uint(sha256.Size-domain.SecretSize)

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
	secret := s.Secret(workspace, invitation, attempt)
	return domain.InvitationToken{WorkspaceID: workspace, InvitationID: invitation, Secret: secret[:]}.String()
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
