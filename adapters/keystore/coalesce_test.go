package keystore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/keystore"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections/projectionstest"
)

// TestConcurrentEnsuresShareTransactions: keys asked for at the same
// moment by many callers are made in fewer transactions than calls
// (counted in the WAL), each caller gets its own subjects' keys, and a
// caller asking for a destroyed key is the only one refused.
func TestConcurrentEnsuresShareTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, ownerURL := pgtest.New(t)
	pool, _ := pgtest.Service(t, ownerURL)
	kek := newKEK(t)
	kr := keystore.New(pool, kek).EventsInThisDatabase()
	gone := uuid.New()
	if _, err := kr.Destroy(ctx, gone); err != nil {
		t.Fatal(err)
	}

	const calls, refused = 48, 3
	subjects := make([]uuid.UUID, calls)
	for i := range subjects {
		subjects[i] = uuid.New()
	}
	got := make([]map[uuid.UUID]*pii.Key, calls)
	errs := make([]error, calls)
	window := projectionstest.StartWAL(t, ownerURL)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			ask := []uuid.UUID{subjects[i]}
			if i < refused {
				ask = append(ask, gone)
			}
			<-start
			got[i], errs[i] = kr.EnsureFresh(ctx, ask)
		})
	}
	close(start)
	wg.Wait()
	cost, err := window.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for i := range calls {
		var erased *pii.ErasedError
		switch {
		case i < refused:
			if !errors.As(errs[i], &erased) || !slices.Equal(erased.Subjects, []uuid.UUID{gone}) {
				t.Errorf("call %d asking for a destroyed key: %v, want it refused naming that subject only", i, errs[i])
			}
		case errs[i] != nil:
			t.Errorf("call %d: %v", i, errs[i])
		case len(got[i]) != 1 || got[i][subjects[i]] == nil:
			t.Errorf("call %d: keys %v, want its subject's only", i, got[i])
		}
	}
	// Every key made was stored, and is the one its caller got (read by
	// another keyring: this one's cache holds what it answered).
	stored, err := keystore.New(pool, kek).Lookup(ctx, subjects[refused:])
	if err != nil {
		t.Fatal(err)
	}
	for i := refused; i < calls; i++ {
		if stored[subjects[i]] == nil || got[i][subjects[i]] == nil || *stored[subjects[i]] != *got[i][subjects[i]] {
			t.Errorf("call %d: the stored key differs from the one answered", i)
		}
	}
	keys := cost.Tables["account_keys"]
	if keys == nil || keys.Inserted != calls {
		t.Fatalf("account_keys: %+v, want %d keys inserted", keys, calls)
	}
	if keys.Commits > calls/2 {
		t.Errorf("%d calls at once made their keys in %d transactions, want them to share (at most %d)", calls, keys.Commits, calls/2)
	}
	t.Logf("%d calls, %d transactions", calls, keys.Commits)
}
