package esdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/commands"
)

// TestRetriesSpentAreUnavailable: an election or a node not ready that
// outlasts the retries comes back as commands.ErrUnavailable (an outage,
// which the HTTP layer answers 503), whatever code the client gave it; a
// permanent refusal does not.
func TestRetriesSpentAreUnavailable(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	s := openOn(t, srv.URL(), esdb.WithAppendRetries(1))
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	if _, err := s.Append(ctx, stream, eventstore.NoStream{}, newEvent(0)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []esdbtest.Fault{esdbtest.NoLeaderInfo, esdbtest.NotReady, esdbtest.Timeout} {
		srv.Inject(esdbtest.OpAppend, f, -1)
		_, err := s.Append(ctx, stream, eventstore.Any{}, newEvent(1))
		if !errors.Is(err, commands.ErrUnavailable) {
			t.Errorf("append answered %v until the retries ran out: got %v, want commands.ErrUnavailable", f, err)
		}
		srv.Inject(esdbtest.OpAppend, f, 0)
		srv.Inject(esdbtest.OpReadStream, f, -1)
		_, err = s.ReadStream(ctx, stream, eventstore.ReadOptions{})
		if !errors.Is(err, commands.ErrUnavailable) {
			t.Errorf("read answered %v until the retries ran out: got %v, want commands.ErrUnavailable", f, err)
		}
		srv.Inject(esdbtest.OpReadStream, f, 0)
	}
	srv.Inject(esdbtest.OpReadStream, esdbtest.AccessDenied, -1)
	_, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{})
	if err == nil || errors.Is(err, commands.ErrUnavailable) {
		t.Errorf("read denied: got %v, want an error that is no outage", err)
	}
}
