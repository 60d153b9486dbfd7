package esdbtest_test

import (
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// TestIdempotencyWithExactRevision: below the stream's revision, the same
// ids in the same place answer the original result, with its position,
// for as long as the events exist (a restart does not matter); ids
// elsewhere, or only some of them, answer wrong expected version.
func TestIdempotencyWithExactRevision(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	first, second := events(2), events(2)
	r1 := mustAppend(t, c, "s", esdbclient.NoStream{}, first...)
	r2 := mustAppend(t, c, "s", esdbclient.Revision(1), second...)
	mustAppend(t, c, "s", esdbclient.Revision(3), events(1)...)
	srv.Restart(t) // the index survives; only the cache of recent ids goes
	reconnected(t, c)

	for _, tc := range []struct {
		name     string
		expected esdbclient.ExpectedRevision
		events   []esdbclient.EventData
		want     *esdbclient.WriteResult
	}{
		{"first append again, no stream", esdbclient.NoStream{}, first, r1},
		{"second append again, revision 1", esdbclient.Revision(1), second, r2},
	} {
		got, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{ExpectedRevision: tc.expected}, tc.events...)
		if err != nil || *got != *tc.want {
			t.Errorf("%s: got %+v, %v, want the original result %+v", tc.name, got, err, tc.want)
		}
		if got != nil && got.CommitPosition == 0 {
			t.Errorf("%s: got no position, want the original one", tc.name)
		}
	}
	for _, tc := range []struct {
		name     string
		expected esdbclient.ExpectedRevision
		events   []esdbclient.EventData
	}{
		{"stored ids in another place", esdbclient.Revision(0), second},
		{"stored id then a new one", esdbclient.NoStream{}, []esdbclient.EventData{first[0], event("New")}},
		{"new ids below the end", esdbclient.Revision(1), events(2)},
		{"more ids than were stored there", esdbclient.Revision(3), append(events(0), second[0], second[1])},
	} {
		_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{ExpectedRevision: tc.expected}, tc.events...)
		if codeOf(err) != esdbclient.ErrorCodeWrongExpectedVersion {
			t.Errorf("%s: got %v, want wrong expected version", tc.name, err)
		}
	}
	if got, err := readStream(timeout(t), c, "s"); err != nil || len(got) != 5 {
		t.Errorf("stream: got %d events (%v), want the 5 appended once", len(got), err)
	}
}

// TestNoIdempotencyAtTheEnd: with the stream's own revision expected, the
// server does not look at the ids: a repeat is stored again.
func TestNoIdempotencyAtTheEnd(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	evs := events(2)
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("First"))
	mustAppend(t, c, "s", esdbclient.Revision(0), evs...)
	again := mustAppend(t, c, "s", esdbclient.Revision(2), evs...)
	if again.NextExpectedVersion != 4 {
		t.Errorf("repeat at the end: got revision %d, want 4 (stored again)", again.NextExpectedVersion)
	}
	got, _ := readStream(timeout(t), c, "s")
	if len(got) != 5 || got[3].EventID != evs[0].EventID || got[1].EventID != evs[0].EventID {
		t.Errorf("stream: got %v, want the two ids twice", idsOf(got))
	}
}

// TestIdempotencyWithAnyIsACache: with any (or stream-exists), a repeat is
// recognised only while its ids are in the leader's bounded cache of
// recent writes, which a restart empties.
func TestIdempotencyWithAnyIsACache(t *testing.T) {
	t.Parallel()
	// Room for a few ids of stream "s" (about 52 bytes each).
	srv := esdbtest.Start(t, esdbtest.WithIdempotencyCache(300))
	c := client(t, srv.URL())
	evs := events(2)
	first := mustAppend(t, c, "s", esdbclient.Any{}, evs...)
	for _, expected := range []esdbclient.ExpectedRevision{esdbclient.Any{}, esdbclient.StreamExists{}} {
		got := mustAppend(t, c, "s", expected, evs...)
		if *got != *first {
			t.Errorf("repeat with %T: got %+v, want the original result %+v", expected, got, first)
		}
	}
	// Half a repeat is refused.
	_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, evs[0], event("New"))
	if codeOf(err) != esdbclient.ErrorCodeWrongExpectedVersion {
		t.Errorf("stored id then a new one: got %v, want wrong expected version", err)
	}

	// Later writes push the ids out of the cache: the repeat is stored.
	mustAppend(t, c, "s", esdbclient.Any{}, events(6)...)
	if got := mustAppend(t, c, "s", esdbclient.Any{}, evs...); got.NextExpectedVersion != 9 {
		t.Errorf("repeat past the cache: got revision %d, want 9 (stored again)", got.NextExpectedVersion)
	}

	// A restart empties it.
	more := events(1)
	mustAppend(t, c, "s", esdbclient.Any{}, more...)
	srv.Restart(t)
	reconnected(t, c)
	if got := mustAppend(t, c, "s", esdbclient.Any{}, more...); got.NextExpectedVersion != 11 {
		t.Errorf("repeat after a restart: got revision %d, want 11 (stored again)", got.NextExpectedVersion)
	}
}

// TestIdempotencyAcrossFailover: the new leader has its own (empty) cache:
// a repeat with any is stored again, one with an exact revision is not.
func TestIdempotencyAcrossFailover(t *testing.T) {
	t.Parallel()
	cl, c := connectCluster(t)
	withAny, exact := events(1), events(1)
	mustAppend(t, c, "any", esdbclient.Any{}, withAny...)
	r := mustAppend(t, c, "exact", esdbclient.NoStream{}, exact...)
	cl.Elect(1)
	// The client still talks to node 0, now a follower that forwards.
	if got := mustAppend(t, c, "exact", esdbclient.NoStream{}, exact...); *got != *r {
		t.Errorf("exact repeat after the failover: got %+v, want %+v", got, r)
	}
	if got := mustAppend(t, c, "any", esdbclient.Any{}, withAny...); got.NextExpectedVersion != 1 {
		t.Errorf("repeat with any after the failover: got revision %d, want 1 (stored again)", got.NextExpectedVersion)
	}
}

// TestWriteNotYetReplicated: with the followers silent the leader writes
// an append but cannot commit it: Aborted after the write timeout, nobody
// reads it, a repeat is dropped (Aborted again) instead of stored, and once
// the followers catch up it is there once; a repeat then answers the
// original result.
func TestWriteNotYetReplicated(t *testing.T) {
	t.Parallel()
	cl := esdbtest.StartCluster(t, esdbtest.WithWriteTimeout(100*time.Millisecond))
	c := client(t, cl.URL())
	mustAppend(t, c, "s", esdbclient.NoStream{}, event("First"))
	cl.StallReplication()
	evs := events(2)
	for i, expected := range []esdbclient.ExpectedRevision{esdbclient.Revision(0), esdbclient.Revision(0), esdbclient.Any{}} {
		_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{ExpectedRevision: expected}, evs...)
		if codeOf(err) != esdbclient.ErrorAborted {
			t.Errorf("append expecting %v with the followers silent: got %v, want ErrorAborted", expected, err)
		}
		// The first is written and waits for its commit; the repeats are
		// dropped before they are written.
		want := "Operation timed out: Prepare phase timeout."
		if i == 0 {
			want = "Operation timed out: Commit phase timeout."
		}
		wantStatus(t, "its status", err, codes.Aborted, want)
	}
	if got, _ := readStream(timeout(t), c, "s"); len(got) != 1 {
		t.Errorf("read before the commit: got %d events, want 1", len(got))
	}
	cl.ResumeReplication()
	got, err := readStream(timeout(t), c, "s")
	if err != nil || len(got) != 3 || got[1].EventID != evs[0].EventID {
		t.Fatalf("read after the commit: got %v (%v), want the write once", idsOf(got), err)
	}
	r := mustAppend(t, c, "s", esdbclient.Revision(0), evs...)
	if r.NextExpectedVersion != 2 || r.CommitPosition != got[2].Position.Commit {
		t.Errorf("repeat after the commit: got %+v, want revision 2 at %v", r, got[2].Position)
	}
}
