package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/usersd/usersd/projections/audit"
)

const (
	envAuditSigningKey   = "USERSD_AUDIT_SIGNING_KEY"
	envAuditPreviousKeys = "USERSD_AUDIT_PREVIOUS_KEYS"
)

// devAuditKey is the embedded default's audit signing key: a seed kept
// like the development JWT secret.
var devAuditKey = devSecret{
	file: "dev-audit-signing-key", what: "development audit signing key", env: envAuditSigningKey,
	make: func() ([]byte, error) {
		seed := make([]byte, audit.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		return []byte(base64.RawURLEncoding.EncodeToString(seed)), nil
	},
	check: func(b []byte) error {
		_, err := audit.DecodeSeed(string(b))
		return err
	},
}

// auditSigner reads USERSD_AUDIT_SIGNING_KEY (a 32-byte Ed25519 seed,
// base64url) and USERSD_AUDIT_PREVIOUS_KEYS (the public keys of earlier
// signing keys, base64url, comma-separated), which GET /v1/audit/keys
// publishes beside the current one so that what they signed stays
// checkable. The signing key is required unless usersd runs on the
// embedded default, which makes one once and keeps it (devAuditKey): a
// service that cannot sign its audit heads is refused at start rather than
// run without them, as the development mailbox is outside the embedded
// default. The key never goes into the database.
func auditSigner(e *env, db database) (*audit.Signer, error) {
	var previous []ed25519.PublicKey
	for i, part := range strings.Split(auditPreviousKeysSetting.get(e.Getenv), ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		pub, err := audit.DecodeKey(part)
		if err != nil {
			return nil, usageErrorf("%s: item %d: %v, as GET /v1/audit/keys shows publicKey", envAuditPreviousKeys, i+1, err)
		}
		previous = append(previous, pub)
	}
	var seed []byte
	switch v := auditSigningKeySetting.get(e.Getenv); {
	case v != "":
		s, err := audit.DecodeSeed(v)
		if err != nil {
			return nil, usageErrorf("%s is %v: make one with %s", envAuditSigningKey, err, makeKey)
		}
		seed = s
	case configuredBy(db, e.Getenv) != "":
		return nil, usageErrorf("%s is not set: it is required with %s (a 32-byte Ed25519 seed, base64url, kept out of the database; make one with %s)",
			envAuditSigningKey, configuredBy(db, e.Getenv), makeKey)
	default:
		kept, err := devAuditKey.keep(e)
		if err != nil {
			return nil, err
		}
		if seed, err = audit.DecodeSeed(string(kept)); err != nil {
			return nil, err
		}
	}
	return audit.NewSigner(seed, previous...)
}
