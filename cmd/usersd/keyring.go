package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
)

// streamNamesKey names the server key (keystore.ServerKey) of the HMAC
// that names account streams. It never changes: a new key would name every
// address's stream anew.
const streamNamesKey = "stream-names"

// codecFor is the codec of the events in db: the key store of db's
// database under the key-encryption keys k (nil: the configured ones,
// read here), and its stream-name key.
func codecFor(ctx context.Context, e *env, db database, pool *pgxpool.Pool, k *keks) (*eventstore.Codec, error) {
	if k == nil {
		read, err := readKEKs(e, db)
		if err != nil {
			return nil, err
		}
		k = &read
	}
	ring, err := openKeys(ctx, pool, *k)
	if err != nil {
		return nil, err
	}
	if esdbURLSetting.get(e.Getenv) == "" {
		ring.EventsInThisDatabase()
	}
	streamKey, err := ring.ServerKey(ctx, streamNamesKey)
	if err != nil {
		return nil, fmt.Errorf("the stream-name key: %w", err)
	}
	return eventstore.NewCodec(ring, streamKey), nil
}
