package main

import (
	"crypto/rand"
	"encoding/base64"

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
	previous, err := parseList(auditPreviousKeysSetting.get(e.Getenv), audit.DecodeKey, func(i int, _ string, err error) error {
		return usageErrorf("%s: item %d: %v, as GET /v1/audit/keys shows publicKey", envAuditPreviousKeys, i, err)
	})
	if err != nil {
		return nil, err
	}
	seed, err := secretOr(e, db, devAuditKey, auditSigningKeySetting.get(e.Getenv), audit.DecodeSeed, func(_ string, err error) error {
		return usageErrorf("%s is %v: make one with %s", envAuditSigningKey, err, makeKey)
	}, func(by string) error {
		return usageErrorf("%s is not set: it is required with %s (a 32-byte Ed25519 seed, base64url, kept out of the database; make one with %s)",
			envAuditSigningKey, by, makeKey)
	})
	if err != nil {
		return nil, err
	}
	return audit.NewSigner(seed, previous...)
}
