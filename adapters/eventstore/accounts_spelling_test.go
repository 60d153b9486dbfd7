package eventstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
)

// TestAccountsKeepAnEarlierSpelling: an account reserved, before addresses
// were normalised with IDNA, under the ASCII spelling of its domain
// ("jane@xn--mnchen-3ya.de", kept as typed) is the account of the canonical
// address ("jane@münchen.de"): same id, no second reservation. An address
// never reserved that way gets a new account under its canonical form.
func TestAccountsKeepAnEarlierSpelling(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, ctx context.Context, store eventstore.Store) {
		old := uuid.New()
		reg := domain.AccountRegistered{UserID: old, Email: "jane@xn--mnchen-3ya.de"}
		data := legacyData(t, reg, stamp(nil, reg))
		if _, err := store.Append(ctx, eventstore.LegacyAccountStream("jane@xn--mnchen-3ya.de"), eventstore.NoStream{}, data); err != nil {
			t.Fatal(err)
		}
		jane, _ := domain.NormalizeEmail("Jane@xn--MNCHEN-3ya.de")
		ann, _ := domain.NormalizeEmail("ann@münchen.de")
		newID := func() uuid.UUID { return uuid.New() }
		meta := func(e domain.Event) domain.Metadata { return stamp(nil, e) }
		for range 2 { // a second replica has not seen the address either
			ids, err := eventstore.NewAccounts(store, testCodec, 10).Resolve(ctx, []domain.Email{jane, ann}, newID, meta)
			if err != nil {
				t.Fatal(err)
			}
			if ids[jane] != old {
				t.Errorf("%s: got %s, want the earlier spelling's %s", jane, ids[jane], old)
			}
			if ids[ann] == uuid.Nil || ids[ann] == old {
				t.Errorf("%s: got %s, want an account of its own", ann, ids[ann])
			}
		}
		for _, stream := range []string{testCodec.AccountStream(jane), eventstore.LegacyAccountStream(jane)} {
			if _, err := store.ReadStream(ctx, stream, eventstore.ReadOptions{Max: 1}); err == nil {
				t.Errorf("%s got a reservation of its own beside the earlier spelling's", jane)
			}
		}
	})
}
