package httpapi_test

import (
	"testing"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// TestLifecycleOnESDB runs the whole lifecycle of TestLifecycle with every
// event (e-mail reservations and logins included) in the EventStoreDB
// adapter over its in-process test server; the read models stay in
// PostgreSQL, as with ESDB_URL set.
func TestLifecycleOnESDB(t *testing.T) {
	// No t.Parallel here: TestLifecycle calls it.
	onESDB(t, TestLifecycle)
}

// TestAccessReviewLifecycleOnESDB runs TestAccessReviewLifecycle with its
// events in the EventStoreDB adapter, over the in-process test server.
func TestAccessReviewLifecycleOnESDB(t *testing.T) {
	// No t.Parallel here: TestAccessReviewLifecycle calls it.
	onESDB(t, TestAccessReviewLifecycle)
}

// onESDB runs test with the events of the APIs it makes in the EventStoreDB
// adapter over an in-process test server, and checks that they went there.
func onESDB(t *testing.T, test func(*testing.T)) {
	srv := esdbtest.Start(t)
	eventStores.Store(t, func(t testing.TB) eventstore.Store {
		s, err := esdb.Open(srv.URL())
		if err != nil {
			t.Fatalf("esdb.Open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	})
	t.Cleanup(func() { eventStores.Delete(t) })
	test(t)
	if srv.Len() == 0 {
		t.Errorf("events in the test server: got none, want the test's")
	}
}
