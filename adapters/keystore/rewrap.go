package keystore

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/pii"
)

// rewrapBatch is how many keys one statement of Rewrap re-wraps.
const rewrapBatch = 500

// Rewrap re-wraps every key (account keys, server keys and webhook
// secrets) wrapped under
// another KEK than the current one, unwrapping it with the previous KEKs
// it was given, and answers how many it re-wrapped; progress, if not nil,
// is told each batch's count. The keys themselves, and so every sealed
// value, stay the same: no event is touched. It may run while the service
// runs (a key destroyed meanwhile stays destroyed: a row is re-wrapped
// only if it still holds the key read) and again after a failure (it
// resumes where it stopped). A key under a KEK it was not given stops it
// with an *UnknownKEKError before it changes anything.
func (k *Keyring) Rewrap(ctx context.Context, progress func(int)) (n int, err error) {
	if err := k.Check(ctx); err != nil {
		return 0, err
	}
	var after uuid.UUID
	for {
		rows, err := k.pool.Query(ctx, `
			SELECT user_id, wrapped, kek_id FROM account_keys
			WHERE kek_id <> $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, k.current.ID(), after, rewrapBatch)
		if err != nil {
			return n, fmt.Errorf("re-wrap account keys: %w", err)
		}
		var (
			users      []uuid.UUID
			olds, news [][]byte
		)
		err = k.eachKey(rows, func(user uuid.UUID, wrapped []byte, key *pii.Key) {
			users = append(users, user)
			olds = append(olds, wrapped)
			news = append(news, pii.WrapAccountKey(k.current, user, key))
		})
		if err != nil {
			return n, fmt.Errorf("re-wrap account keys: %w", err)
		}
		if len(users) == 0 {
			break
		}
		// Only rows that still hold what was read: a key destroyed or
		// re-wrapped meanwhile is left as it now is.
		tag, err := k.pool.Exec(ctx, `
			UPDATE account_keys k SET wrapped = n.new, kek_id = $4
			FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS n(u, old, new)
			WHERE k.user_id = n.u AND k.wrapped = n.old`, users, olds, news, k.current.ID())
		if err != nil {
			return n, fmt.Errorf("re-wrap account keys: %w", err)
		}
		n += int(tag.RowsAffected())
		if progress != nil {
			progress(int(tag.RowsAffected()))
		}
		after = users[len(users)-1]
	}

	for _, t := range []struct {
		table, key string
		name       func(key string) string
	}{
		{"server_keys", "name", func(name string) string { return name }},
		{"webhook_secrets", "webhook_id", webhookSecretName},
	} {
		m, err := k.rewrapNamed(ctx, t.table, t.key, t.name, progress)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// rewrapNamed re-wraps the secrets of table (server_keys,
// webhook_secrets), each wrapped for the name (pii.WrapServerKey) that
// name makes of its key column, and answers how many.
func (k *Keyring) rewrapNamed(ctx context.Context, table, keyColumn string, name func(key string) string, progress func(int)) (n int, err error) {
	rows, err := k.pool.Query(ctx, `SELECT `+keyColumn+`::text, wrapped, kek_id FROM `+table+` WHERE kek_id <> $1 ORDER BY 1`, k.current.ID())
	if err != nil {
		return n, fmt.Errorf("re-wrap %s: %w", table, err)
	}
	type secret struct {
		key, kekID string
		wrapped    []byte
	}
	secrets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (secret, error) {
		var s secret
		return s, r.Scan(&s.key, &s.wrapped, &s.kekID)
	})
	if err != nil {
		return n, fmt.Errorf("re-wrap %s: %w", table, err)
	}
	for _, s := range secrets {
		kek, ok := k.byID[s.kekID]
		if !ok {
			return n, &UnknownKEKError{IDs: []string{s.kekID}}
		}
		plain, err := pii.UnwrapServerKey(kek, name(s.key), s.wrapped)
		if err != nil {
			return n, err
		}
		tag, err := k.pool.Exec(ctx, `UPDATE `+table+` SET wrapped = $2, kek_id = $3 WHERE `+keyColumn+`::text = $1 AND wrapped = $4`,
			s.key, pii.WrapServerKey(k.current, name(s.key), plain), k.current.ID(), s.wrapped)
		if err != nil {
			return n, fmt.Errorf("re-wrap %s %q: %w", table, s.key, err)
		}
		n += int(tag.RowsAffected())
		if progress != nil {
			progress(int(tag.RowsAffected()))
		}
	}
	return n, nil
}
