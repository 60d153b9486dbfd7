package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/pii"
)

// TestDevKEKIsKeptPerUser: the embedded default makes its key-encryption
// key once and keeps it like the audit signing key (mode 0600, refused
// once others may read it); outside it the KEK must be configured.
func TestDevKEKIsKeptPerUser(t *testing.T) {
	t.Parallel()
	dir, vars, e, db := onDevDefault(t)
	testKeptPerUser(t, dir, "dev-key-encryption-key", func() (pii.KEK, error) {
		k, err := readKEKs(e, db)
		return k.current, err
	}, pii.KEK.ID)

	vars[envKeyEncryptionKey] = testKEK
	vars[envKeyEncryptionPreviousKeys] = " " + pii.GenerateKEK() + ",, " + testKEK
	configured, err := readKEKs(e, db)
	want, _ := pii.ParseKEK(testKEK)
	if err != nil || configured.current.ID() != want.ID() || len(configured.previous) != 2 || configured.previous[1].ID() != want.ID() {
		t.Errorf("configured: %v, %v; want %s current and two previous", configured, err, want.ID())
	}

	delete(vars, envKeyEncryptionKey)
	if _, err := readKEKs(e, database{Source: envDatabaseURL}); err == nil || !strings.Contains(err.Error(), "USERSD_KEY_ENCRYPTION_KEY is not set: it is required with DATABASE_URL") {
		t.Errorf("no KEK with DATABASE_URL: got %v, want it required", err)
	}
}

// TestKeysRotate: usersd keys rotate re-wraps every key under the new KEK,
// after which the old one is no longer needed; without the old KEK it
// changes nothing and says what to set; serve's openKeys refuses to start
// on keys wrapped under a KEK it was not given.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := pgtest.New(t)
	oldKEK, newKEK := pii.GenerateKEK(), pii.GenerateKEK()
	oldK, _ := pii.ParseKEK(oldKEK)
	newK, _ := pii.ParseKEK(newKEK)
	people := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	before := keystore.New(pool, oldK)
	keys, err := before.Ensure(ctx, people)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := before.ServerKey(ctx, "stream-names"); err != nil {
		t.Fatal(err)
	}
	if _, err := before.Destroy(ctx, people[0]); err != nil {
		t.Fatal(err)
	}

	if _, err := openKeys(ctx, pool, keks{current: newK}); err == nil || !strings.Contains(err.Error(), oldK.ID()) ||
		!strings.Contains(err.Error(), envKeyEncryptionPreviousKeys) {
		t.Errorf("openKeys with only the new KEK: got %v, want a usage error naming the old KEK's id and %s", err, envKeyEncryptionPreviousKeys)
	}
	got := runUsersd(t, map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: newKEK}, "keys", "rotate")
	if got.code != exitUsage || !strings.Contains(got.stderr, oldK.ID()) || !strings.Contains(got.stderr, "re-wrapped 0 keys") {
		t.Errorf("rotate without the old KEK: exit %d, stderr %q; want %d naming KEK %s", got.code, got.stderr, exitUsage, oldK.ID())
	}
	if strings.Contains(got.stderr, newKEK) || strings.Contains(got.stderr, oldKEK) {
		t.Errorf("a KEK was printed: %s", got.stderr)
	}

	got = runUsersd(t, map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: newKEK, envKeyEncryptionPreviousKeys: oldKEK}, "keys", "rotate")
	if got.code != exitOK || !strings.Contains(got.stderr, "re-wrapped 3 keys under KEK "+newK.ID()) {
		t.Fatalf("rotate: exit %d, stderr %q; want the 2 keys left and the server key re-wrapped", got.code, got.stderr)
	}
	after, err := openKeys(ctx, pool, keks{current: newK})
	if err != nil {
		t.Fatalf("openKeys with only the new KEK after the rotation: %v", err)
	}
	found, err := after.Lookup(ctx, people)
	if err != nil || len(found) != 2 || *found[people[1]] != *keys[people[1]] || *found[people[2]] != *keys[people[2]] {
		t.Errorf("keys after the rotation: %v, %v; want the same two keys", found, err)
	}
	if _, err := after.Ensure(ctx, people[:1]); !errors.Is(err, pii.ErrErased) {
		t.Errorf("the erased person after the rotation: %v, want ErrErased", err)
	}

	for _, tt := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{envDatabaseURL: dbURL}, []string{"keys", "rotate"}, "USERSD_KEY_ENCRYPTION_KEY is not set: it is required with DATABASE_URL"},
		{map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: "c2hvcnQ"}, []string{"keys", "rotate"}, "USERSD_KEY_ENCRYPTION_KEY is 5 bytes, want 32"},
		{map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: newKEK}, []string{"keys"}, "want: usersd keys rotate"},
		{map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: newKEK}, []string{"keys", "rotate", "now"}, "want: usersd keys rotate"},
	} {
		got := runUsersd(t, tt.vars, tt.args...)
		if got.code != exitUsage || !strings.Contains(got.stderr, tt.want) {
			t.Errorf("usersd %q: exit %d, stderr %q; want %d and %q", tt.args, got.code, got.stderr, exitUsage, tt.want)
		}
	}
}
