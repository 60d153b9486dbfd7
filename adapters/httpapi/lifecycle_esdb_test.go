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
	TestLifecycle(t)
	if srv.Len() == 0 {
		t.Errorf("events in the test server: got none, want the lifecycle's")
	}
}

// TestAccessReviewLifecycleOnESDB runs TestAccessReviewLifecycle with its
// events in the EventStoreDB adapter, over the in-process test server.
func TestAccessReviewLifecycleOnESDB(t *testing.T) {
	// No t.Parallel here: TestAccessReviewLifecycle calls it.
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
	TestAccessReviewLifecycle(t)
	if srv.Len() == 0 {
		t.Errorf("events in the test server: got none, want the review's")
	}
}
