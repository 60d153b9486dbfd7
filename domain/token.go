package domain

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"

	"github.com/google/uuid"
)

// SecretSize is the number of random bytes in an invitation link's secret:
// 256 bits, twice the product's floor of 128.
const SecretSize = 32

// FirstAttempt is the attempt number of an invitation's first e-mail; each
// resend adds one. A link secret is derived from it (see commands.LinkSecrets).
const FirstAttempt = 1

// InvitationToken is what an invitation link carries. The workspace and
// invitation ids only route the token; the secret proves it. Only a hash of
// all of it and the invited address is ever stored.
type InvitationToken struct {
	WorkspaceID  uuid.UUID
	InvitationID uuid.UUID
	Secret       []byte
}

// Strict decoding refuses non-zero spare bits, so one token has one spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// String renders the token for a link: URL-safe, no padding.
func (t InvitationToken) String() string {
	b := make([]byte, 0, 32+len(t.Secret))
	b = append(b, t.WorkspaceID[:]...)
	b = append(b, t.InvitationID[:]...)
	b = append(b, t.Secret...)
	return tokenEncoding.EncodeToString(b)
}

// ParseInvitationToken reads a token from a link. Anything malformed is
// invalid_token, without saying which part was wrong.
func ParseInvitationToken(s string) (InvitationToken, error) {
	if len(s) != tokenEncoding.EncodedLen(32+SecretSize) {
		return InvitationToken{}, ErrInvalidToken
	}
	// The decoder skips line breaks, so the length of s alone does not
	// make a full token.
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || len(b) != 32+SecretSize {
		return InvitationToken{}, ErrInvalidToken
	}
	var t InvitationToken
	copy(t.WorkspaceID[:], b[:16])
	copy(t.InvitationID[:], b[16:32])
	t.Secret = b[32:]
	return t, nil
}

// hash binds the secret to its workspace, invitation and address: a stored
// hash matches only a token made for exactly that invitation of that person.
func (t InvitationToken) hash(email Email) string {
	h := sha256.New()
	h.Write([]byte("usersd invitation v1\x00"))
	h.Write(t.WorkspaceID[:])
	h.Write(t.InvitationID[:])
	h.Write([]byte(email))
	h.Write([]byte{0})
	h.Write(t.Secret)
	return hex.EncodeToString(h.Sum(nil))
}

func (t InvitationToken) matches(email Email, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.hash(email)), []byte(storedHash)) == 1
}
