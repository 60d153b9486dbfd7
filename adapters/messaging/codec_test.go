package messaging_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// testKeys and testCodec seal and open the tests' events: one keyring, as
// the replicas of one deployment share one.
var (
	testKeys  = pii.NewMemoryKeyring()
	testCodec = eventstore.NewCodec(testKeys, []byte("the tests' stream-name key, 32 B"))
)

// failureReason is the opened reason of the one InvitationEmailFailed
// stored; the events table holds it sealed.
func failureReason(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var sealed string
	var user uuid.UUID
	if err := pool.QueryRow(context.Background(), `SELECT data->>'reason', (data->>'userId')::uuid FROM events WHERE type = $1`,
		domain.EventName(domain.InvitationEmailFailed{})).Scan(&sealed, &user); err != nil {
		t.Fatal(err)
	}
	if !pii.IsSealed(sealed) {
		t.Errorf("the stored reason %q is not sealed: a mail server's answer may quote the address", sealed)
	}
	keys, err := testKeys.Lookup(context.Background(), []uuid.UUID{user})
	if err != nil {
		t.Fatal(err)
	}
	reason, err := pii.Open(keys[user], user, sealed)
	if err != nil {
		t.Fatal(err)
	}
	return reason
}
