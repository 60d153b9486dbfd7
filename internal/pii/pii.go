// Package pii seals personal data under a key per person, so that
// destroying the key erases the data wherever it was copied (events, audit
// entries, exports) while what holds it stays byte for byte the same:
// crypto-shredding.
//
// A sealed value is a string, so that it fits wherever the plain value did
// (a JSON string of an event, a text column of an audit entry):
//
//	"pii1." + base64url(nonce || AES-256-GCM(key, nonce, value, aad))
//
// with a random 12-byte nonce and aad = "usersd.pii.v1\n" + the subject's
// user id, so that a sealed value cannot be passed off as another person's.
// A value without the prefix is one written before sealing existed and is
// read as it is (Open answers it unchanged).
package pii

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Prefix starts every sealed value. No address or name a person can be
// given starts with it (addresses need an @ before any dot that far in,
// names are checked text), so a value with it is never plain text.
const Prefix = "pii1."

// KeySize is the size of a data key: AES-256.
const KeySize = 32

// Key is one person's data key.
type Key [KeySize]byte

// ErrErased answers a request for the key of a person whose key was
// destroyed: their personal data is gone, and nothing may be sealed for
// them any more.
var ErrErased = errors.New("the account was deleted and its personal data erased")

// ErasedError names the people whose keys were destroyed; it matches
// ErrErased.
type ErasedError struct{ Subjects []uuid.UUID }

func (e *ErasedError) Error() string {
	return fmt.Sprintf("%d account(s) deleted and erased", len(e.Subjects))
}

func (e *ErasedError) Unwrap() error { return ErrErased }

// Keyring keeps the data keys.
type Keyring interface {
	// Lookup answers the keys of the subjects that have one; a subject
	// missing from the map has none: never made (all its values are
	// plain), or destroyed (its sealed values can never be opened).
	Lookup(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error)
	// Ensure answers a key for every subject, making the missing ones. A
	// subject whose key was destroyed gets none: the answer is an
	// *ErasedError naming them all. It may answer a key seen a moment ago
	// (seconds) without asking the store: what it seals is erased all the
	// same if the key was destroyed meanwhile.
	Ensure(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error)
	// EnsureFresh is Ensure asking the store for every subject: for what
	// decides on whether a person was erased (an account's reservation:
	// an erased address gets a new account).
	EnsureFresh(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*Key, error)
}

// IsSealed reports whether s is a sealed value.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

const nonceSize = 12

// Seal seals value for subject under key. The empty string stays empty: it
// tells nothing about anyone, and keeps "absent" recognisable.
func Seal(key *Key, subject uuid.UUID, value string) string {
	if value == "" {
		return ""
	}
	aead := newAEAD(key)
	buf := make([]byte, nonceSize, nonceSize+len(value)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		panic("pii: no randomness: " + err.Error()) // crypto/rand never fails on a supported platform
	}
	buf = aead.Seal(buf, buf[:nonceSize], []byte(value), aad(subject))
	return Prefix + base64.RawURLEncoding.EncodeToString(buf)
}

// Open answers the plain value of s, a value Seal made for subject, or a
// plain value written before sealing, which it answers unchanged. A nil key
// for a sealed value answers ErrErased: its key is gone.
func Open(key *Key, subject uuid.UUID, s string) (string, error) {
	if key == nil {
		return openWith(nil, subject, s)
	}
	return openWith(func() cipher.AEAD { return newAEAD(key) }, subject, s)
}

// Opener opens values sealed with a set of keys (Open), making each key's
// cipher once: what opens a page of events, many values of few people,
// where making the cipher cost more than opening the value. Once made it
// is safe for concurrent use (it only reads its ciphers, which keep no
// state between calls).
type Opener struct{ aeads map[uuid.UUID]cipher.AEAD }

// NewOpener makes the ciphers of keys.
func NewOpener(keys map[uuid.UUID]*Key) *Opener {
	o := &Opener{aeads: make(map[uuid.UUID]cipher.AEAD, len(keys))}
	for s, k := range keys {
		if k != nil {
			o.aeads[s] = newAEAD(k)
		}
	}
	return o
}

// Open is Open with subject's key among the opener's (ErrErased for a
// sealed value of a subject it has no key for).
func (o *Opener) Open(subject uuid.UUID, s string) (string, error) {
	aead, ok := o.aeads[subject]
	if !ok {
		return openWith(nil, subject, s)
	}
	return openWith(func() cipher.AEAD { return aead }, subject, s)
}

// openWith opens s with the cipher aead makes; nil: no key.
func openWith(aead func() cipher.AEAD, subject uuid.UUID, s string) (string, error) {
	rest, sealed := strings.CutPrefix(s, Prefix)
	if !sealed {
		return s, nil
	}
	if aead == nil {
		return "", ErrErased
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < nonceSize {
		return "", fmt.Errorf("pii: a sealed value is malformed")
	}
	plain, err := aead().Open(nil, raw[:nonceSize], raw[nonceSize:], aad(subject))
	if err != nil {
		return "", fmt.Errorf("pii: a sealed value does not open with its subject's key (altered, or sealed for someone else)")
	}
	return string(plain), nil
}

func newAEAD(key *Key) cipher.AEAD {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

func aad(subject uuid.UUID) []byte {
	return append([]byte("usersd.pii.v1\n"), subject[:]...)
}

// NewKey makes a random data key.
func NewKey() *Key {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		panic("pii: no randomness: " + err.Error())
	}
	return &k
}
