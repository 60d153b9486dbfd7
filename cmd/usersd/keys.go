package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/internal/pii"
)

const (
	envKeyEncryptionKey          = "USERSD_KEY_ENCRYPTION_KEY"
	envKeyEncryptionPreviousKeys = "USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS"

	// makeKey is how the messages tell an operator to make a key of 32
	// random bytes, base64url: a KEK, an audit signing key.
	makeKey = "head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='"
)

// devKEK is the embedded default's key-encryption key, kept like the
// development JWT secret.
var devKEK = devSecret{
	file: "dev-key-encryption-key", what: "development key-encryption key", env: envKeyEncryptionKey,
	make: func() ([]byte, error) { return []byte(pii.GenerateKEK()), nil },
	check: func(b []byte) error {
		_, err := pii.ParseKEK(string(b))
		return err
	},
}

// keks is the configured key-encryption keys: current wraps the keys
// made from now on; previous only unwraps, until `usersd keys rotate` has
// re-wrapped what they wrapped.
type keks struct {
	current  pii.KEK
	previous []pii.KEK
}

// readKEKs reads USERSD_KEY_ENCRYPTION_KEY (32 bytes, base64url) and
// USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS (the same, comma-separated). The
// KEK is required unless usersd runs on the embedded default, which makes
// one once and keeps it (devKEK), as the audit signing key: outside it, a
// KEK made up at start would make every key unreadable at the next one.
// The KEK never goes into the database, and nothing prints it.
func readKEKs(e *env, db database) (keks, error) {
	var k keks
	var err error
	k.previous, err = parseList(kekPreviousSetting.get(e.Getenv), pii.ParseKEK, func(i int, _ string, err error) error {
		return usageErrorf("%s: item %d %v: each is a former %s (32 bytes, base64url)", envKeyEncryptionPreviousKeys, i, err, envKeyEncryptionKey)
	})
	if err != nil {
		return k, err
	}
	v := kekSetting.get(e.Getenv)
	if strings.TrimSpace(v) == "" {
		v = "" // blank: not set
	}
	k.current, err = secretOr(e, db, devKEK, v, pii.ParseKEK, func(_ string, err error) error {
		return usageErrorf("%s %v: it is 32 random bytes, base64url; make one with %s", envKeyEncryptionKey, err, makeKey)
	}, func(by string) error {
		return usageErrorf("%s is not set: it is required with %s (32 random bytes, base64url, kept out of the database and its backups; make one with %s; see docs/erasure.md)",
			envKeyEncryptionKey, by, makeKey)
	})
	return k, err
}

// openKeys is the key store of pool's database under k, checked: a key
// wrapped under a KEK that k lacks (the KEK was changed without keeping
// the old one as previous) stops the start with what to do, rather than
// the first read of a person's data.
func openKeys(ctx context.Context, pool *pgxpool.Pool, k keks) (*keystore.Keyring, error) {
	ring := keystore.New(pool, k.current, k.previous...)
	if err := ring.Check(ctx); err != nil {
		return nil, kekError(err, k)
	}
	return ring, nil
}

// kekError tells an operator what an *keystore.UnknownKEKError means for
// the configuration.
func kekError(err error, k keks) error {
	var unknown *keystore.UnknownKEKError
	if !errors.As(err, &unknown) {
		return err
	}
	return usageErrorf("keys in the database are wrapped under KEK id %s, which is neither %s (id %s) nor one of %s (%d given): "+
		"set the key-encryption key they were made with, as %s or among %s",
		strings.Join(unknown.IDs, ", "), envKeyEncryptionKey, k.current.ID(), envKeyEncryptionPreviousKeys, len(k.previous),
		envKeyEncryptionKey, envKeyEncryptionPreviousKeys)
}

func keysCommand() *command {
	return &command{
		Name:     "keys",
		Synopsis: "rotate [flags]",
		Summary:  "re-wrap the personal data keys under a new key-encryption key",
		Help: `
keys rotate re-wraps every key of the key store (each person's data key and the
server's keys) that is wrapped under another key-encryption key (KEK) than
USERSD_KEY_ENCRYPTION_KEY, unwrapping it with USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS.
The keys themselves stay the same, so no event or audit entry changes. It may
run while usersd serves; run it again after a failure, it resumes. Progress goes
to standard error. The steps of a rotation are in docs/erasure.md.

Environment:
  DATABASE_URL                          PostgreSQL connection URL (default: the local server)
  USERSD_KEY_ENCRYPTION_KEY             the new KEK (32 bytes, base64url)
  USERSD_KEY_ENCRYPTION_PREVIOUS_KEYS   the KEKs it replaces, comma-separated`,
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			databaseFlag(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 || args[0] != "rotate" {
					return usageErrorf("want: usersd keys rotate [flags]")
				}
				db, err := resolveDatabase(fs, e.Getenv)
				if err != nil {
					return err
				}
				k, err := readKEKs(e, db)
				if err != nil {
					return err
				}
				rt, err := open(ctx, e, db, needs{migrate: true, pool: true})
				if err != nil {
					return err
				}
				defer rt.close()
				ring := keystore.New(rt.pool, k.current, k.previous...)
				bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(e.Stderr),
					progressbar.OptionSetDescription("re-wrapping keys"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(), progressbar.OptionSetItsString("keys"), progressbar.OptionThrottle(100*time.Millisecond),
					// The spinner's own goroutine reads the bar unlocked
					// (a data race in progressbar v3.19): it moves on Add.
					progressbar.OptionSetSpinnerChangeInterval(0))
				n, err := ring.Rewrap(ctx, func(k int) { _ = bar.Add(k) })
				_ = bar.Finish()
				fmt.Fprintf(e.Stderr, "\nre-wrapped %d keys under KEK %s\n", n, k.current.ID())
				if err != nil {
					return kekError(err, k)
				}
				if len(k.previous) > 0 {
					fmt.Fprintf(e.Stderr, "every key is now wrapped under %s: %s can be removed\n", envKeyEncryptionKey, envKeyEncryptionPreviousKeys)
				}
				return nil
			}
		},
	}
}
