package pii

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
)

// KEK is a key-encryption key: the operator's secret that wraps every data
// key (and the server's own keys) before they go into the database, so
// that a copy of the database alone opens nothing. It stays out of the
// database; only its ID is stored beside what it wrapped, to tell which
// KEK a rotation still has to replace.
type KEK struct {
	key [KeySize]byte
	id  string
}

// ParseKEK reads a KEK as the configuration gives it: 32 bytes, base64url
// (padding optional; standard base64 is accepted too, as `base64` makes it).
func ParseKEK(s string) (KEK, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if s == "" {
		return KEK{}, errors.New("is empty")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return KEK{}, errors.New("is not base64url")
	}
	return NewKEK(raw)
}

// NewKEK makes a KEK of 32 raw bytes.
func NewKEK(raw []byte) (KEK, error) {
	if len(raw) != KeySize {
		return KEK{}, fmt.Errorf("is %d bytes, want %d", len(raw), KeySize)
	}
	var k KEK
	copy(k.key[:], raw)
	sum := sha256.Sum256(append([]byte("usersd.kek-id.v1\n"), raw...))
	// 8 bytes tell KEKs apart and tell nothing usable about the key.
	k.id = hex.EncodeToString(sum[:8])
	return k, nil
}

// GenerateKEK makes a random KEK, base64url: the embedded default's, and
// what an operator's `head -c 32 /dev/urandom | base64` would give.
func GenerateKEK() string {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		panic("pii: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// ID names k without revealing it: what the key store records beside each
// wrapped key.
func (k KEK) ID() string { return k.id }

// IsZero reports whether k is the zero KEK (never parsed).
func (k KEK) IsZero() bool { return k.id == "" }

// String keeps the key itself out of logs and error messages.
func (k KEK) String() string { return "KEK " + k.id }

// Format answers String for every verb (%d, %x, %#v too), so that no
// formatting of a KEK shows its bytes.
func (k KEK) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// WrapAccountKey wraps subject's data key under k for storage.
func WrapAccountKey(k KEK, subject uuid.UUID, key *Key) []byte {
	return k.wrap(accountAAD(subject), key[:])
}

// UnwrapAccountKey opens what WrapAccountKey made for subject. It fails on a
// wrapped key of someone else (the subject is authenticated), altered, or
// wrapped under another KEK.
func UnwrapAccountKey(k KEK, subject uuid.UUID, wrapped []byte) (*Key, error) {
	raw, err := k.unwrap(accountAAD(subject), wrapped)
	if err != nil {
		return nil, fmt.Errorf("pii: the key of account %s does not unwrap with %s (altered, or wrapped for another account)", subject, k)
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("pii: the key of account %s is %d bytes, want %d", subject, len(raw), KeySize)
	}
	var key Key
	copy(key[:], raw)
	return &key, nil
}

// WrapServerKey wraps the server's secret named name (e.g. the stream-name
// HMAC key) under k.
func WrapServerKey(k KEK, name string, secret []byte) []byte {
	return k.wrap(serverAAD(name), secret)
}

// UnwrapServerKey opens what WrapServerKey made for name.
func UnwrapServerKey(k KEK, name string, wrapped []byte) ([]byte, error) {
	raw, err := k.unwrap(serverAAD(name), wrapped)
	if err != nil {
		return nil, fmt.Errorf("pii: the server key %q does not unwrap with %s (altered, or wrapped for another name)", name, k)
	}
	return raw, nil
}

func (k KEK) wrap(aad, plain []byte) []byte {
	key := Key(k.key)
	aead := newAEAD(&key)
	buf := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		panic("pii: no randomness: " + err.Error())
	}
	return aead.Seal(buf, buf[:nonceSize], plain, aad)
}

func (k KEK) unwrap(aad, wrapped []byte) ([]byte, error) {
	if len(wrapped) < nonceSize {
		return nil, errors.New("too short")
	}
	key := Key(k.key)
	return newAEAD(&key).Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
}

func accountAAD(subject uuid.UUID) []byte {
	return append([]byte("usersd.account-key.v1\n"), subject.String()...)
}

func serverAAD(name string) []byte {
	return append([]byte("usersd.server-key.v1\n"), name...)
}
