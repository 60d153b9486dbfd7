package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/internal/pii"
)

// placeholderKeys is the keyring until the PostgreSQL key store is wired:
// one per process, so that a command's runs in one process (the tests'
// serve and rebuild) read what the others sealed.
var placeholderKeys = pii.NewMemoryKeyring()

// keyringFor answers the data keys and the stream-name key of the events
// in the database pool reaches.
//
// PLACEHOLDER (issue 16): keys held in memory die with the process, so
// events sealed by one run open as erased in the next. The lead replaces
// this one function with the key store (adapters/keystore: the keyring,
// and its ServerKey("stream-names")).
func keyringFor(_ context.Context, _ *env, _ *pgxpool.Pool) (pii.Keyring, []byte, error) {
	return placeholderKeys, []byte("usersd development stream-name key"), nil
}

// codecFor is the codec of the events in the database pool reaches.
func codecFor(ctx context.Context, e *env, pool *pgxpool.Pool) (*eventstore.Codec, error) {
	keys, streamKey, err := keyringFor(ctx, e, pool)
	if err != nil {
		return nil, err
	}
	return eventstore.NewCodec(keys, streamKey), nil
}
