package keystore_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/pii"
)

// TestEnsureTrustsOnlyRecentKeys: Ensure answers a key this replica saw
// less than EnsureTTL ago without asking (the window in which a key
// destroyed on another replica still seals), EnsureFresh always asks.
func TestEnsureTrustsOnlyRecentKeys(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	a, b := keystore.New(pool, kek), keystore.New(pool, kek)
	jane := uuid.New()
	if _, err := a.Ensure(ctx, []uuid.UUID{jane}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Destroy(ctx, jane); err != nil {
		t.Fatal(err)
	}
	if keys, err := a.Ensure(ctx, []uuid.UUID{jane}); err != nil || keys[jane] == nil {
		t.Errorf("Ensure within EnsureTTL of a key seen: %v, %v; want the key, from memory", keys, err)
	}
	if _, err := a.EnsureFresh(ctx, []uuid.UUID{jane}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("EnsureFresh after another replica's Destroy: %v, want ErrErased", err)
	}
	time.Sleep(keystore.EnsureTTL)
	if _, err := a.Ensure(ctx, []uuid.UUID{jane}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("Ensure EnsureTTL after another replica's Destroy: %v, want ErrErased", err)
	}
}

// serviceDB gives a test a database of its own, connected as the
// service's role, and a new KEK.
func serviceDB(t *testing.T) (context.Context, *pgxpool.Pool, pii.KEK) {
	t.Helper()
	pool, _ := pgtest.NewService(t)
	return context.Background(), pool, newKEK(t)
}

func newKEK(t *testing.T) pii.KEK {
	t.Helper()
	k, err := pii.ParseKEK(pii.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestEnsureAndLookup: Ensure makes a key once per person, every replica
// then finds the same one, and the database holds it wrapped only.
func TestEnsureAndLookup(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	// Two replicas; a commits new keys as serve does on the PostgreSQL
	// store (EventsInThisDatabase: no flush of their own).
	a, b := keystore.New(pool, kek).EventsInThisDatabase(), keystore.New(pool, kek)
	jane, john, nobody := uuid.New(), uuid.New(), uuid.New()

	if got, err := a.Lookup(ctx, []uuid.UUID{jane}); err != nil || len(got) != 0 {
		t.Fatalf("Lookup before any key: %v, %v; want none", got, err)
	}
	keys, err := a.Ensure(ctx, []uuid.UUID{jane, john, jane})
	if err != nil || len(keys) != 2 || keys[jane] == nil || keys[john] == nil || *keys[jane] == *keys[john] {
		t.Fatalf("Ensure: %v, %v; want two different keys", keys, err)
	}
	again, err := b.Ensure(ctx, []uuid.UUID{john, jane})
	if err != nil || *again[jane] != *keys[jane] || *again[john] != *keys[john] {
		t.Fatalf("Ensure on another replica: %v, %v; want the same keys", again, err)
	}
	for name, r := range map[string]*keystore.Keyring{"a": a, "b": b} {
		found, err := r.Lookup(ctx, []uuid.UUID{jane, nobody, john})
		if err != nil || len(found) != 2 || *found[jane] != *keys[jane] || *found[john] != *keys[john] {
			t.Errorf("Lookup on %s: %v, %v; want jane's and john's keys only", name, found, err)
		}
	}
	if empty, err := a.Ensure(ctx, nil); err != nil || len(empty) != 0 {
		t.Errorf("Ensure of nobody: %v, %v", empty, err)
	}

	var wrapped []byte
	var kekID string
	if err := pool.QueryRow(ctx, `SELECT wrapped, kek_id FROM account_keys WHERE user_id = $1`, jane).Scan(&wrapped, &kekID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, keys[jane][:]) || kekID != kek.ID() {
		t.Errorf("stored: kek_id %q (want %q), key in clear: %v", kekID, kek.ID(), bytes.Contains(wrapped, keys[jane][:]))
	}
	if _, err := keystore.New(pool, newKEK(t)).Lookup(ctx, []uuid.UUID{jane}); !errors.As(err, new(*keystore.UnknownKEKError)) {
		t.Errorf("Lookup under another KEK: got %v, want an UnknownKEKError", err)
	}
}

// TestDestroy: a destroyed key is found by no replica, cached or not, is
// never made again, and Destroy answers the first erasure's time.
func TestDestroy(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	a, b := keystore.New(pool, kek), keystore.New(pool, kek)
	jane, john, never := uuid.New(), uuid.New(), uuid.New()
	if _, err := a.Ensure(ctx, []uuid.UUID{jane, john}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup(ctx, []uuid.UUID{jane}); err != nil { // now in a's cache
		t.Fatal(err)
	}
	if _, erased, err := a.Erased(ctx, jane); err != nil || erased {
		t.Fatalf("Erased before Destroy: %v, %v", erased, err)
	}

	at, err := a.Destroy(ctx, jane)
	if err != nil || at.IsZero() {
		t.Fatalf("Destroy: %v, %v", at, err)
	}
	again, err := b.Destroy(ctx, jane)
	if err != nil || !again.Equal(at) {
		t.Errorf("Destroy again: %v, %v; want the first time %v", again, err, at)
	}
	if got, erased, err := b.Erased(ctx, jane); err != nil || !erased || !got.Equal(at) {
		t.Errorf("Erased: %v, %v, %v; want %v", got, erased, err, at)
	}
	for name, r := range map[string]*keystore.Keyring{"a (had it cached)": a, "b": b, "a fresh one": keystore.New(pool, kek)} {
		found, err := r.Lookup(ctx, []uuid.UUID{jane, john})
		if err != nil || found[jane] != nil || found[john] == nil {
			t.Errorf("Lookup on %s after Destroy: %v, %v; want john's key only", name, found, err)
		}
		var erasedErr *pii.ErasedError
		keys, err := r.Ensure(ctx, []uuid.UUID{john, jane})
		if !errors.As(err, &erasedErr) || !errors.Is(err, pii.ErrErased) || len(erasedErr.Subjects) != 1 || erasedErr.Subjects[0] != jane || keys != nil {
			t.Errorf("Ensure on %s after Destroy: %v, %v; want an ErasedError naming jane, and no keys", name, keys, err)
		}
	}

	// A person who never had a key is erased all the same: none is ever made.
	if _, err := a.Destroy(ctx, never); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Ensure(ctx, []uuid.UUID{never}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("Ensure after Destroy of a person without a key: %v, want ErrErased", err)
	}
	if _, erased, err := a.Erased(ctx, uuid.New()); err != nil || erased {
		t.Errorf("Erased of an unknown person: %v, %v; want false", erased, err)
	}
}

// TestEnsureRacesDestroy: Destroy against Ensure and Lookup on two replicas
// at once. After Destroy returns, no Ensure on any replica answers a key
// (the old one or a new one), no Lookup on the replica that destroyed it
// answers it (the other's cache may, for up to CacheTTL: by design), and
// the key is gone from the database for good.
func TestEnsureRacesDestroy(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	replicas := []*keystore.Keyring{keystore.New(pool, kek), keystore.New(pool, kek)}
	const people, callers = 40, 4
	var wg sync.WaitGroup
	errs := make(chan error, people*callers*4)
	for i := 0; i < people; i++ {
		person := uuid.New()
		if i%2 == 0 { // half of them had a key before, half get their first now
			if _, err := replicas[0].Ensure(ctx, []uuid.UUID{person}); err != nil {
				t.Fatal(err)
			}
		}
		var destroyed atomic.Bool
		destroyer := replicas[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := destroyer.Destroy(ctx, person); err != nil {
				errs <- err
			}
			destroyed.Store(true)
		}()
		for c := 0; c < callers; c++ {
			r := replicas[c%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 5; j++ {
					// EnsureFresh never answers a destroyed key, on any
					// replica; Ensure may answer one seen less than
					// EnsureTTL ago on a replica that did not destroy it.
					ensure, strict := r.Ensure, r == destroyer
					if j%2 == 1 {
						ensure, strict = r.EnsureFresh, true
					}
					after := destroyed.Load()
					keys, err := ensure(ctx, []uuid.UUID{person, uuid.New()})
					switch {
					case err != nil && !errors.Is(err, pii.ErrErased):
						errs <- err
					case after && err == nil && strict:
						errs <- errors.New("an EnsureFresh, or the destroying replica's Ensure, that started after Destroy returned answered a key")
					case err == nil && keys[person] == nil:
						errs <- errors.New("Ensure answered no error and no key")
					}
					after = destroyed.Load()
					found, err := r.Lookup(ctx, []uuid.UUID{person})
					if err != nil {
						errs <- err
					} else if after && found[person] != nil && r == destroyer {
						errs <- errors.New("a Lookup that started after Destroy returned answered the key")
					}
				}
			}()
		}
		if i%8 == 7 {
			wg.Wait()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var keys int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM account_keys WHERE wrapped IS NOT NULL AND user_id IN (
		SELECT user_id FROM account_keys WHERE erased_at IS NOT NULL)`).Scan(&keys); err != nil || keys != 0 {
		t.Errorf("keys of erased people left: %d (%v)", keys, err)
	}
	var erased int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM account_keys WHERE erased_at IS NOT NULL`).Scan(&erased); err != nil || erased != people {
		t.Errorf("erased people: %d (%v), want %d", erased, err, people)
	}
	checkAllErased(t, pool, replicas, []*keystore.Keyring{keystore.New(pool, kek)})
}

// checkAllErased: every erased person of the database gets no key from
// Ensure on any of replicas, and none from Lookup on any of fresh.
func checkAllErased(t *testing.T, pool *pgxpool.Pool, replicas, fresh []*keystore.Keyring) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT user_id FROM account_keys WHERE erased_at IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, r := range fresh {
		if found, err := r.Lookup(ctx, ids); err != nil || len(found) != 0 {
			t.Errorf("Lookup of erased people: %d keys (%v), want none", len(found), err)
		}
	}
	for _, r := range append(replicas, fresh...) {
		for _, id := range ids {
			if _, err := r.EnsureFresh(ctx, []uuid.UUID{id}); !errors.Is(err, pii.ErrErased) {
				t.Errorf("EnsureFresh of an erased person: %v, want ErrErased", err)
			}
		}
	}
	// Ensure may still answer a key a replica saw less than EnsureTTL
	// ago; after that, never.
	time.Sleep(keystore.EnsureTTL)
	for _, r := range append(replicas, fresh...) {
		for _, id := range ids {
			if _, err := r.Ensure(ctx, []uuid.UUID{id}); !errors.Is(err, pii.ErrErased) {
				t.Errorf("Ensure of an erased person, EnsureTTL after: %v, want ErrErased", err)
			}
		}
	}
}

// TestServerKey: one secret per name for the database's life, whichever
// replica asks first, kept wrapped.
func TestServerKey(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	const replicas = 6
	got := make([][]byte, replicas)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if got[i], err = keystore.New(pool, kek).ServerKey(ctx, "stream-names"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) != keystore.ServerKeySize || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("replica %d: %x, want the same %d bytes as replica 0 (%x)", i, got[i], keystore.ServerKeySize, got[0])
		}
	}
	other, err := keystore.New(pool, kek).ServerKey(ctx, "other")
	if err != nil || bytes.Equal(other, got[0]) {
		t.Errorf("another name: %x, %v; want another secret", other, err)
	}
	var wrapped []byte
	if err := pool.QueryRow(ctx, `SELECT wrapped FROM server_keys WHERE name = 'stream-names'`).Scan(&wrapped); err != nil || bytes.Contains(wrapped, got[0]) {
		t.Errorf("stored: %v, secret in clear: %v", err, bytes.Contains(wrapped, got[0]))
	}
	if _, err := keystore.New(pool, newKEK(t)).ServerKey(ctx, "stream-names"); !errors.As(err, new(*keystore.UnknownKEKError)) {
		t.Errorf("ServerKey under another KEK: %v, want an UnknownKEKError", err)
	}
}

// TestRewrap: a rotation re-wraps every key under the new KEK, keeps every
// key (so every sealed value) the same, leaves erased people erased, and
// then the old KEK is no longer needed.
func TestRewrap(t *testing.T) {
	t.Parallel()
	ctx, pool, oldKEK := serviceDB(t)
	newKEK := newKEK(t)
	before := keystore.New(pool, oldKEK)
	people := make([]uuid.UUID, 1234) // more than one batch
	for i := range people {
		people[i] = uuid.New()
	}
	keys, err := before.Ensure(ctx, people)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := before.ServerKey(ctx, "stream-names")
	if err != nil {
		t.Fatal(err)
	}
	hook, hookSecret := uuid.New(), []byte("a webhook's secret, 32 bytes....")
	if err := before.WebhookSecrets().Store(ctx, uuid.New(), hook, hookSecret); err != nil {
		t.Fatal(err)
	}
	erased := people[7]
	if _, err := before.Destroy(ctx, erased); err != nil {
		t.Fatal(err)
	}

	onlyNew := keystore.New(pool, newKEK)
	if err := onlyNew.Check(ctx); !errors.As(err, new(*keystore.UnknownKEKError)) {
		t.Fatalf("Check with only the new KEK before the rotation: %v, want an UnknownKEKError", err)
	}
	if n, err := onlyNew.Rewrap(ctx, nil); n != 0 || !errors.As(err, new(*keystore.UnknownKEKError)) {
		t.Fatalf("Rewrap without the old KEK: %d, %v; want an UnknownKEKError before any change", n, err)
	}

	during := keystore.New(pool, newKEK, oldKEK)
	if err := during.Check(ctx); err != nil {
		t.Fatalf("Check with both KEKs: %v", err)
	}
	var reported int
	n, err := during.Rewrap(ctx, func(k int) { reported += k })
	if err != nil || n != len(people)+1 || reported != n { // the people but the erased one, the server key and the webhook's
		t.Fatalf("Rewrap: %d (progress %d), %v; want %d", n, reported, err, len(people)+1)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM account_keys WHERE kek_id <> $1) + (SELECT count(*) FROM server_keys WHERE kek_id <> $1)
		+ (SELECT count(*) FROM webhook_secrets WHERE kek_id <> $1)`,
		newKEK.ID()).Scan(&left); err != nil || left != 0 {
		t.Errorf("keys under another KEK after Rewrap: %d (%v)", left, err)
	}

	if err := onlyNew.Check(ctx); err != nil {
		t.Errorf("Check with only the new KEK after the rotation: %v", err)
	}
	found, err := onlyNew.Lookup(ctx, people)
	if err != nil || len(found) != len(people)-1 || found[erased] != nil {
		t.Fatalf("Lookup after Rewrap: %d keys, %v; want all but the erased person's", len(found), err)
	}
	for _, p := range people {
		if p != erased && *found[p] != *keys[p] {
			t.Fatalf("the key of %s changed in the rotation", p)
		}
	}
	if got, err := onlyNew.ServerKey(ctx, "stream-names"); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("ServerKey after Rewrap: %x, %v; want the same secret", got, err)
	}
	if got, err := onlyNew.WebhookSecrets().Secret(ctx, hook); err != nil || !bytes.Equal(got, hookSecret) {
		t.Errorf("the webhook's secret after Rewrap: %q, %v; want the same secret", got, err)
	}
	if _, err := onlyNew.Ensure(ctx, []uuid.UUID{erased}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("Ensure of the erased person after Rewrap: %v, want ErrErased", err)
	}
	if n, err := during.Rewrap(ctx, nil); n != 0 || err != nil {
		t.Errorf("Rewrap again: %d, %v; want nothing to do", n, err)
	}
}

// TestWebhookSecrets: a webhook's secret is kept wrapped, opens for that
// webhook only, and a webhook without one answers ErrNoWebhookSecret.
func TestWebhookSecrets(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	secrets := keystore.New(pool, kek).WebhookSecrets()
	a, b := uuid.New(), uuid.New()
	secret := []byte("0123456789abcdef0123456789abcdef")
	if err := secrets.Store(ctx, uuid.New(), a, secret); err != nil {
		t.Fatal(err)
	}
	if got, err := secrets.Secret(ctx, a); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Secret: %q, %v; want %q", got, err, secret)
	}
	var wrapped []byte
	if err := pool.QueryRow(ctx, `SELECT wrapped FROM webhook_secrets WHERE webhook_id = $1`, a).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, secret) {
		t.Fatal("the secret is stored in clear")
	}
	if _, err := secrets.Secret(ctx, b); !errors.Is(err, keystore.ErrNoWebhookSecret) {
		t.Fatalf("Secret of a webhook without one: %v, want ErrNoWebhookSecret", err)
	}
	// Another webhook's row does not open as this one's.
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_secrets (webhook_id, workspace_id, wrapped, kek_id)
		SELECT $2, workspace_id, wrapped, kek_id FROM webhook_secrets WHERE webhook_id = $1`, a, b); err != nil {
		t.Fatal(err)
	}
	if got, err := secrets.Secret(ctx, b); err == nil {
		t.Fatalf("a secret copied to another webhook opened: %q", got)
	}
	if got, err := keystore.New(pool, newKEK(t)).WebhookSecrets().Secret(ctx, a); err == nil {
		t.Fatalf("the secret opened under another KEK: %q", got)
	}
}

// TestLookupCacheIsBounded: a Lookup of more people than the cache holds
// still answers every key.
func TestLookupCacheIsBounded(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	r := keystore.New(pool, kek)
	people := make([]uuid.UUID, keystore.CacheEntries+100)
	for i := range people {
		people[i] = uuid.New()
	}
	if _, err := r.Ensure(ctx, people); err != nil {
		t.Fatal(err)
	}
	found, err := r.Lookup(ctx, people)
	if err != nil || len(found) != len(people) {
		t.Fatalf("Lookup of more people than the cache holds: %d keys, %v; want %d", len(found), err, len(people))
	}
}

// TestEnsureFindsAKeyMadeMeanwhile: another replica makes a person's key
// while Ensure's statement runs (its insert waits for the other's commit,
// then does nothing, and its snapshot does not hold the row): Ensure still
// answers that key, the one every replica uses, not a key of its own.
func TestEnsureFindsAKeyMadeMeanwhile(t *testing.T) {
	t.Parallel()
	ctx, pool, kek := serviceDB(t)
	jane, theirs := uuid.New(), pii.NewKey()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO account_keys (user_id, wrapped, kek_id, created_at) VALUES ($1, $2, $3, now())`,
		jane, pii.WrapAccountKey(kek, jane, theirs), kek.ID()); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		keys map[uuid.UUID]*pii.Key
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		keys, err := keystore.New(pool, kek).Ensure(ctx, []uuid.UUID{jane})
		done <- answer{keys, err}
	}()
	waitForALockWait(t, pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.keys[jane] == nil || *got.keys[jane] != *theirs {
		t.Fatalf("Ensure: %v, %v; want the key the other replica made", got.keys, got.err)
	}
}

// waitForALockWait waits until a session of the database waits for a lock.
func waitForALockWait(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for i := 0; ; i++ {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if i == 500 {
			t.Fatal("no session waits for a lock after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
