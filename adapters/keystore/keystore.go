// Package keystore keeps the data keys of pii (one per person) and the
// server's own keys in PostgreSQL (tables account_keys and server_keys,
// migration 00009), each wrapped under the operator's key-encryption key
// (pii.KEK), which never comes into the database.
//
// Destroying a person's key (erasure) keeps their row as a tombstone, with
// no key: the row's primary key serialises the creation of a key against
// its destruction, so a key can never be made again for an erased person,
// whatever runs at the same time on any replica (Ensure, Destroy), and the
// table's trigger refuses to bring a destroyed key back.
package keystore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/pii"
)

// Cache bounds. A key destroyed on another replica may still open values
// here for up to CacheTTL: the reads of one replica are not worth a round
// trip per batch for that. Ensure (what seals new values) trusts only
// entries younger than EnsureTTL: one command asks for the same people two
// or three times within milliseconds (the account reservation, then the
// events), and the round trip was most of what sealing cost an invitation.
// A value sealed meanwhile under a key destroyed on another replica is
// erased all the same, and what decides on an erasure (an account's
// reservation) uses EnsureFresh, which never answers from the cache.
const (
	CacheTTL     = 30 * time.Second
	EnsureTTL    = 2 * time.Second
	CacheEntries = 10000
)

// ServerKeySize is the size of the server's secrets ServerKey makes.
const ServerKeySize = 32

// Keyring is the PostgreSQL key store: a pii.Keyring that can also
// destroy keys, keep the server's secrets, and re-wrap every key under a
// new KEK. It is safe for concurrent use, and several replicas may share
// one database.
type Keyring struct {
	pool    *pgxpool.Pool
	current pii.KEK
	byID    map[string]pii.KEK // current and previous KEKs, by id

	// deferFlush: the events live in this database too (see
	// EventsInThisDatabase).
	deferFlush bool

	mu      sync.Mutex
	cache   map[uuid.UUID]cached
	epoch   uint64 // raised by every Destroy: a Lookup that overlapped one caches nothing
	servers map[string][]byte

	// Keys asked for while a statement making keys is in flight wait
	// for the next one, together (coalesce.go).
	ensureMu    sync.Mutex
	ensuring    bool
	ensureQueue []*ensureCall
}

type cached struct {
	key *pii.Key
	at  time.Time
}

var _ pii.Keyring = (*Keyring)(nil)

// New returns the key store of pool's database, wrapping new keys under
// current and unwrapping keys wrapped under current or any of previous
// (the KEKs a rotation replaces).
func New(pool *pgxpool.Pool, current pii.KEK, previous ...pii.KEK) *Keyring {
	byID := map[string]pii.KEK{current.ID(): current}
	for _, k := range previous {
		if _, ok := byID[k.ID()]; !ok {
			byID[k.ID()] = k
		}
	}
	return &Keyring{pool: pool, current: current, byID: byID,
		cache: make(map[uuid.UUID]cached), servers: make(map[string][]byte)}
}

// EventsInThisDatabase tells the keyring that the events it seals are
// appended to the same PostgreSQL database. A new key's commit then need
// not wait for its own flush to disk: the append of the first event sealed
// under it commits later, synchronously, and PostgreSQL's log is flushed in
// order, so the key is on disk before any event that needs it. With the
// events elsewhere (EventStoreDB) a crash could keep an event and lose its
// key, which would erase it: keys are then flushed on their own commit.
func (k *Keyring) EventsInThisDatabase() *Keyring {
	k.deferFlush = true
	return k
}

// UnknownKEKError says that keys are wrapped under a KEK this keyring was
// not given: the KEK was changed without listing the old one as previous.
type UnknownKEKError struct {
	IDs []string // the unknown KEKs' ids
}

func (e *UnknownKEKError) Error() string {
	return fmt.Sprintf("keys are wrapped under KEK %q, which is neither the current key-encryption key nor one of the previous ones given", e.IDs)
}

// eachKey reads rows of (user_id, wrapped, kek_id) and hands each row's
// unwrapped key to f.
func (k *Keyring) eachKey(rows pgx.Rows, f func(user uuid.UUID, wrapped []byte, key *pii.Key)) error {
	var (
		user    uuid.UUID
		wrapped []byte
		kekID   string
	)
	_, err := pgx.ForEachRow(rows, []any{&user, &wrapped, &kekID}, func() error {
		key, err := k.unwrap(user, wrapped, kekID)
		if err != nil {
			return err
		}
		f(user, wrapped, key)
		return nil
	})
	return err
}

func (k *Keyring) unwrap(subject uuid.UUID, wrapped []byte, kekID string) (*pii.Key, error) {
	kek, ok := k.byID[kekID]
	if !ok {
		return nil, &UnknownKEKError{IDs: []string{kekID}}
	}
	return pii.UnwrapAccountKey(kek, subject, wrapped)
}

// Lookup answers the keys of the subjects that have one, in one round trip
// for those the cache does not hold.
func (k *Keyring) Lookup(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	out, missing, epoch := k.cached(subjects, CacheTTL)
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := k.pool.Query(ctx, `SELECT user_id, wrapped, kek_id FROM account_keys WHERE user_id = ANY($1) AND wrapped IS NOT NULL`, missing)
	if err != nil {
		return nil, fmt.Errorf("look up account keys: %w", err)
	}
	found := make(map[uuid.UUID]*pii.Key, len(missing))
	if err := k.eachKey(rows, func(user uuid.UUID, _ []byte, key *pii.Key) { found[user] = key }); err != nil {
		return nil, fmt.Errorf("look up account keys: %w", err)
	}
	k.remember(epoch, found)
	for s, key := range found {
		out[s] = key
	}
	return out, nil
}

// cached answers the keys of subjects cached less than ttl ago, the
// subjects it lacks, and the epoch to remember what is read for those with.
func (k *Keyring) cached(subjects []uuid.UUID, ttl time.Duration) (map[uuid.UUID]*pii.Key, []uuid.UUID, uint64) {
	out := make(map[uuid.UUID]*pii.Key, len(subjects))
	var missing []uuid.UUID
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range subjects {
		if c, ok := k.cache[s]; ok && now.Sub(c.at) < ttl {
			out[s] = c.key
		} else {
			missing = append(missing, s)
		}
	}
	return out, missing, k.epoch
}

// remember caches keys read while k.epoch was epoch, unless a Destroy ran
// meanwhile: what was read may then be a key destroyed since.
func (k *Keyring) remember(epoch uint64, keys map[uuid.UUID]*pii.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.epoch != epoch || len(keys) == 0 {
		return
	}
	now := time.Now()
	if len(k.cache)+len(keys) > CacheEntries {
		for s, c := range k.cache {
			if now.Sub(c.at) >= CacheTTL {
				delete(k.cache, s)
			}
		}
		// Still full: forget arbitrary entries (map order), which costs
		// only a round trip to read them again.
		for s := range k.cache {
			if len(k.cache)+len(keys) <= CacheEntries {
				break
			}
			delete(k.cache, s)
		}
	}
	for s, key := range keys {
		if len(k.cache) >= CacheEntries {
			break
		}
		k.cache[s] = cached{key: key, at: now}
	}
}

// Ensure answers a key for every subject, making the missing ones, in one
// round trip (two when another replica made one of them at the same
// moment), or none when this keyring saw every key less than EnsureTTL ago
// (see EnsureTTL). A subject whose key was destroyed makes it answer a
// *pii.ErasedError naming every such subject, and no keys. Calls made
// while another's round trip is in flight share the next one
// (coalesce.go).
func (k *Keyring) Ensure(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	out, missing, _ := k.cached(subjects, EnsureTTL)
	if len(missing) == 0 {
		return out, nil
	}
	got, err := k.EnsureFresh(ctx, missing)
	if err != nil {
		return nil, err
	}
	for s, key := range got {
		out[s] = key
	}
	return out, nil
}

// EnsureFresh is Ensure without the cache: one round trip for every
// subject (two when another replica made one of them at the same moment).
func (k *Keyring) EnsureFresh(ctx context.Context, subjects []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	ids := make([]uuid.UUID, 0, len(subjects))
	seen := make(map[uuid.UUID]bool, len(subjects))
	for _, s := range subjects {
		if !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
	}
	if len(ids) == 0 {
		return map[uuid.UUID]*pii.Key{}, nil
	}
	k.mu.Lock()
	epoch := k.epoch
	k.mu.Unlock()
	got, err := k.ensureShared(ctx, ids)
	if err != nil {
		return nil, err
	}
	k.remember(epoch, got)
	return got, nil
}

// ensure is the round trip of Ensure and EnsureFresh for ids (distinct):
// their keys, and the subjects whose key was destroyed.
func (k *Keyring) ensure(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*pii.Key, []uuid.UUID, error) {
	out := make(map[uuid.UUID]*pii.Key, len(ids))
	fresh := make(map[uuid.UUID]*pii.Key, len(ids))
	wrapped := make([][]byte, len(ids))
	for i, s := range ids {
		fresh[s] = pii.NewKey()
		wrapped[i] = pii.WrapAccountKey(k.current, s, fresh[s])
	}
	// The SELECT reads the statement's snapshot, which misses a row
	// another transaction inserted after it began (the INSERT then did
	// nothing): those come back missing and are read again.
	const ensureSQL = `
		WITH made AS (
			INSERT INTO account_keys (user_id, wrapped, kek_id, created_at)
			SELECT u, w, $3, now() FROM unnest($1::uuid[], $2::bytea[]) AS n(u, w)
			ON CONFLICT (user_id) DO NOTHING
			RETURNING user_id)
		SELECT user_id, NULL::bytea, NULL::text, true FROM made
		UNION ALL
		SELECT user_id, wrapped, kek_id, false FROM account_keys
		WHERE user_id = ANY($1) AND user_id NOT IN (SELECT user_id FROM made)`
	var erased []uuid.UUID
	if err := k.insertKeys(ctx, ensureSQL, []any{ids, wrapped, k.current.ID()}, func(rows pgx.Rows) error {
		return k.collect(rows, fresh, out, &erased)
	}); err != nil {
		return nil, nil, fmt.Errorf("ensure account keys: %w", err)
	}
	if len(out)+len(erased) < len(ids) {
		var again []uuid.UUID
		for _, s := range ids {
			if _, ok := out[s]; !ok && !slices.Contains(erased, s) {
				again = append(again, s)
			}
		}
		rows, err := k.pool.Query(ctx, `SELECT user_id, wrapped, kek_id, false FROM account_keys WHERE user_id = ANY($1)`, again)
		if err != nil {
			return nil, nil, fmt.Errorf("ensure account keys: %w", err)
		}
		if err := k.collect(rows, fresh, out, &erased); err != nil {
			return nil, nil, fmt.Errorf("ensure account keys: %w", err)
		}
		if len(out)+len(erased) < len(ids) {
			return nil, nil, errors.New("ensure account keys: a key was neither made nor found") // rows are never removed
		}
	}
	return out, erased, nil
}

// insertKeys runs the statement that makes keys and reads its rows with
// read, in one round trip: as it is, or, with deferFlush, in a transaction
// whose commit does not wait for the disk (EventsInThisDatabase says why
// that is safe).
func (k *Keyring) insertKeys(ctx context.Context, sql string, args []any, read func(pgx.Rows) error) error {
	if !k.deferFlush {
		rows, err := k.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		return read(rows)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(sql, args...)
	b.Queue("COMMIT")
	br := k.pool.SendBatch(ctx, b)
	err := func() error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if err := read(rows); err != nil {
			return err
		}
		_, err = br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// collect reads Ensure's rows (user, wrapped key or NULL, KEK id, made
// now) into out, and the erased subjects into erased.
func (k *Keyring) collect(rows pgx.Rows, fresh, out map[uuid.UUID]*pii.Key, erased *[]uuid.UUID) error {
	var (
		user    uuid.UUID
		wrapped []byte
		kekID   *string
		made    bool
	)
	_, err := pgx.ForEachRow(rows, []any{&user, &wrapped, &kekID, &made}, func() error {
		switch {
		case made:
			out[user] = fresh[user]
		case wrapped == nil:
			*erased = append(*erased, user)
		default:
			key, err := k.unwrap(user, wrapped, *kekID)
			if err != nil {
				return err
			}
			out[user] = key
		}
		return nil
	})
	return err
}

// Destroy destroys userID's key for good (making a tombstone if the person
// never had one, so that none is ever made), and answers when the first
// erasure happened: calling it again changes nothing and answers the same
// time. When it returns, neither this keyring nor any other answers the
// key again from the database; other replicas' Lookup caches may hold it
// for up to CacheTTL.
func (k *Keyring) Destroy(ctx context.Context, userID uuid.UUID) (erasedAt time.Time, err error) {
	k.forget(userID)
	err = k.pool.QueryRow(ctx, `
		INSERT INTO account_keys AS k (user_id, created_at, erased_at) VALUES ($1, now(), now())
		ON CONFLICT (user_id) DO UPDATE SET wrapped = NULL, kek_id = NULL, erased_at = coalesce(k.erased_at, excluded.erased_at)
		RETURNING erased_at`, userID).Scan(&erasedAt)
	// Again after the commit: a Lookup that read the key before it
	// committed must not cache it after the first forget.
	k.forget(userID)
	if err != nil {
		return time.Time{}, fmt.Errorf("destroy the key of account %s: %w", userID, err)
	}
	return erasedAt.UTC(), nil
}

func (k *Keyring) forget(userID uuid.UUID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	delete(k.cache, userID)
}

// Erased answers when userID's key was destroyed, and false when it was
// not (it exists, or was never made).
func (k *Keyring) Erased(ctx context.Context, userID uuid.UUID) (time.Time, bool, error) {
	var at *time.Time
	err := k.pool.QueryRow(ctx, `SELECT erased_at FROM account_keys WHERE user_id = $1`, userID).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && at == nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("is account %s erased: %w", userID, err)
	}
	return at.UTC(), true, nil
}

// ServerKey answers the server's secret named name (ServerKeySize random
// bytes), making it the first time any replica asks. The same name
// answers the same secret for the database's lifetime.
func (k *Keyring) ServerKey(ctx context.Context, name string) ([]byte, error) {
	k.mu.Lock()
	secret, ok := k.servers[name]
	k.mu.Unlock()
	if ok {
		return append([]byte(nil), secret...), nil
	}
	secret = make([]byte, ServerKeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	var (
		wrapped []byte
		kekID   string
		made    bool
	)
	err := k.pool.QueryRow(ctx, `
		WITH made AS (
			INSERT INTO server_keys (name, wrapped, kek_id) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING RETURNING wrapped, kek_id)
		SELECT wrapped, kek_id, true FROM made
		UNION ALL SELECT wrapped, kek_id, false FROM server_keys WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM made)`,
		name, pii.WrapServerKey(k.current, name, secret), k.current.ID()).Scan(&wrapped, &kekID, &made)
	if errors.Is(err, pgx.ErrNoRows) { // made by another replica since the statement's snapshot
		err = k.pool.QueryRow(ctx, `SELECT wrapped, kek_id, false FROM server_keys WHERE name = $1`, name).Scan(&wrapped, &kekID, &made)
	}
	if err != nil {
		return nil, fmt.Errorf("server key %q: %w", name, err)
	}
	if !made {
		kek, ok := k.byID[kekID]
		if !ok {
			return nil, fmt.Errorf("server key %q: %w", name, &UnknownKEKError{IDs: []string{kekID}})
		}
		if secret, err = pii.UnwrapServerKey(kek, name, wrapped); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	k.servers[name] = secret
	k.mu.Unlock()
	return append([]byte(nil), secret...), nil
}

// Check fails with an *UnknownKEKError when some key is wrapped under a
// KEK this keyring was not given, so that a service started with the
// wrong KEK stops at once instead of failing on its first read.
func (k *Keyring) Check(ctx context.Context) error {
	rows, err := k.pool.Query(ctx, `
		SELECT DISTINCT kek_id FROM account_keys WHERE kek_id IS NOT NULL
		UNION SELECT kek_id FROM server_keys
		UNION SELECT kek_id FROM webhook_secrets ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("check the key-encryption keys: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("check the key-encryption keys: %w", err)
	}
	var unknown []string
	for _, id := range ids {
		if _, ok := k.byID[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if unknown != nil {
		return &UnknownKEKError{IDs: unknown}
	}
	return nil
}
