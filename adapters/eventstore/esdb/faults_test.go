package esdb_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// openOn opens a store on a connection string with quick resubscription.
func openOn(t *testing.T, url string, opts ...esdb.Option) *esdb.Store {
	t.Helper()
	opts = append([]esdb.Option{esdb.WithResubscribeBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	s, err := esdb.Open(url, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(s.Close)
	return s
}

// untilCaughtUp subscribes from the start and returns the events handed
// over until the subscription has caught up with at least n of them.
func untilCaughtUp(t *testing.T, s *esdb.Store, n int) []eventstore.RecordedEvent {
	t.Helper()
	got, _ := caughtUpBatch(t, s, n)
	return got
}

// caughtUpBatch is untilCaughtUp, with the caught-up batch that ended it
// (its checkpoint).
func caughtUpBatch(t *testing.T, s *esdb.Store, n int) ([]eventstore.RecordedEvent, eventstore.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var got []eventstore.RecordedEvent
	var final eventstore.Batch
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
		got = append(got, b.Events...)
		if b.CaughtUp && len(got) >= n {
			final = b
			return context.Canceled
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeToAll: got %v after %d events, want %d and caught up", err, len(got), n)
	}
	return got, final
}

// TestEveryCallRequiresTheLeader: appends, reads and subscriptions carry
// requires-leader as metadata the server receives (the v4 client alone
// puts it where gRPC never sends it).
func TestEveryCallRequiresTheLeader(t *testing.T) {
	t.Parallel()
	f := startFronts(t, esdbtest.Start(t), 1)[0]
	s := openOn(t, f.url())
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	if _, err := s.Append(ctx, stream, eventstore.NoStream{}, newEvent(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	untilCaughtUp(t, s, 1)
	mds := f.metadata()
	if len(mds) < 3 {
		t.Fatalf("calls seen by the server: got %d, want at least 3", len(mds))
	}
	for i, md := range mds {
		if got := md.Get("requires-leader"); len(got) != 1 || got[0] != "true" {
			t.Errorf("call %d: requires-leader %q, want [true]", i, got)
		}
	}
}

// TestFollowerSendsCallsToTheLeader: a store whose node is a follower gets
// "not leader" for every call, and the client goes to the leader it names:
// no read is served by the follower's copy, no append forwarded by it.
func TestFollowerSendsCallsToTheLeader(t *testing.T) {
	t.Parallel()
	fronts := startFronts(t, esdbtest.Start(t), 2)
	leader, follower := fronts[0], fronts[1]
	s := openOn(t, follower.url())
	ctx := context.Background()
	stream := eventstore.WorkspaceStream(uuid.New())
	if _, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("read through a follower: got %v, want ErrStreamNotFound from the leader", err)
	}
	if _, err := s.Append(ctx, stream, eventstore.NoStream{}, newEvent(0)); err != nil {
		t.Fatalf("append: %v", err)
	}
	if got := untilCaughtUp(t, s, 1); len(got) != 1 {
		t.Fatalf("subscription: got %d events, want 1", len(got))
	}
	for _, kind := range []string{"read", "append", "subscribe"} {
		if leader.callCount(kind) == 0 {
			t.Errorf("%s: the leader never saw one, want the follower to send it there", kind)
		}
	}
	if n := follower.callCount("append") + follower.callCount("read") + follower.callCount("subscribe"); n != 1 {
		t.Errorf("calls the follower saw: got %d, want 1 (the first, answered \"not leader\")", n)
	}
}

// maxCheckpoint is the checkpoint KurrentDB 24.10 before 24.10.5 sent
// (KDB-710).
var maxCheckpoint = &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
	CommitPosition: math.MaxUint64, PreparePosition: math.MaxUint64,
}}}

// TestCheckpointsOnlyOfDeliveredEvents: a server that sends checkpoint
// positions past what it delivered (KDB-710's (2^64-1, 2^64-1); KDB-744's
// past an undelivered event) never makes a batch's checkpoint move past
// the last event handed over, during the catch-up or live.
func TestCheckpointsOnlyOfDeliveredEvents(t *testing.T) {
	t.Parallel()
	f := startFronts(t, esdbtest.Start(t), 1)[0]
	f.sendAfter = func(m *api.ReadResp) []*api.ReadResp {
		if e := m.GetEvent(); e != nil {
			past := &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
				CommitPosition: e.GetEvent().GetCommitPosition() + 1, PreparePosition: e.GetEvent().GetPreparePosition() + 1,
			}}}
			return []*api.ReadResp{past, maxCheckpoint}
		}
		return []*api.ReadResp{maxCheckpoint}
	}
	s := openOn(t, f.url())
	ctx := waitCtx(t)
	appendOne := func(i int) {
		if _, err := s.Append(ctx, eventstore.WorkspaceStream(uuid.New()), eventstore.NoStream{}, newEvent(i)); err != nil {
			t.Errorf("append: %v", err)
		}
	}
	for i := range 5 {
		appendOne(i)
	}
	var (
		last    domain.Position
		seen    int
		writing sync.WaitGroup
	)
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{BatchSize: 2}, func(_ context.Context, b eventstore.Batch) error {
		if n := len(b.Events); n > 0 {
			last = b.Events[n-1].Position
		}
		seen += len(b.Events)
		if b.Checkpoint != last {
			t.Errorf("batch of %d events (caught up %v): got checkpoint %v, want %v, the last event handed over",
				len(b.Events), b.CaughtUp, b.Checkpoint, last)
		}
		if b.CaughtUp && seen == 5 {
			writing.Go(func() { appendOne(5); appendOne(6) })
		}
		if seen == 7 {
			return context.Canceled
		}
		return nil
	})
	writing.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeToAll: got %v after %d events, want all 7", err, seen)
	}
}

// TestTransientAnswersAreRetried: the answers of a cluster in motion are
// retried, with the same event ids, and the append is stored once.
func TestTransientAnswersAreRetried(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		hooks []hook
	}{
		{"Aborted after the write (commit timeout)", []hook{failAfterStoring(codes.Aborted, "Operation timed out: commit")}},
		{"Unavailable Not Ready", []hook{fail(codes.Unavailable, "Server Is Not Ready")}},
		{"Unavailable Too Busy", []hook{fail(codes.Unavailable, "Server Is Too Busy"), fail(codes.Unavailable, "Server Is Too Busy")}},
		{"Unknown no leader info", []hook{fail(codes.Unknown, "No leader info available in response")}},
		{"DeadlineExceeded after the write", []hook{failAfterStoring(codes.DeadlineExceeded, "deadline")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := esdbtest.Start(t)
			f := startFronts(t, srv, 1)[0]
			s := openOn(t, f.url())
			ctx := context.Background()
			stream := eventstore.WorkspaceStream(uuid.New())
			if _, err := s.Append(ctx, stream, eventstore.NoStream{}, newEvent(0)); err != nil {
				t.Fatal(err)
			}
			f.onAppends(c.hooks...)
			e := newEvent(1)
			r, err := s.Append(ctx, stream, eventstore.Revision(0), e)
			if err != nil {
				t.Fatalf("append: got %v, want it retried until stored", err)
			}
			got, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{})
			if err != nil || len(got) != 2 || got[1].ID != e.ID || r.NextExpectedRevision != 1 || r.Position != got[1].Position {
				t.Errorf("after the append: got %d events (%v) and result %+v, want it stored once at revision 1", len(got), err, r)
			}
			if n, want := f.callCount("append"), 2+len(c.hooks); n != want {
				t.Errorf("appends sent: got %d, want %d", n, want)
			}
			// Reads are retried alike.
			f.onReads(fail(codes.Unavailable, "Server Is Not Ready"), fail(codes.Unknown, "No leader info available in response"))
			if _, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{}); err != nil {
				t.Errorf("read after two transient answers: got %v, want the events", err)
			}
		})
	}
}

// TestPermanentAnswersAreNotRetried: what no retry cures comes back at
// once, as an error that says what to do about it.
func TestPermanentAnswersAreNotRetried(t *testing.T) {
	t.Parallel()
	accessDenied := func(ss grpc.ServerStream, _ func() error) error {
		ss.SetTrailer(metadata.Pairs("exception", "access-denied"))
		return status.Error(codes.PermissionDenied, "Access Denied")
	}
	stream := eventstore.WorkspaceStream(uuid.New())
	for _, c := range []struct {
		name string
		h    hook
		want error
	}{
		{"access denied", accessDenied, esdb.ErrAccessDenied},
		{"unauthenticated", fail(codes.Unauthenticated, "Bad credentials"), esdb.ErrUnauthenticated},
		{"stream deleted", deleted(stream), esdb.ErrStreamDeleted},
		{"too large", fail(codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded."), esdb.ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := startFronts(t, esdbtest.Start(t), 1)[0]
			s := openOn(t, f.url())
			f.onAppends(c.h, c.h)
			_, err := s.Append(context.Background(), stream, eventstore.Any{}, newEvent(0))
			if !errors.Is(err, c.want) {
				t.Errorf("append: got %v, want %v", err, c.want)
			}
			if n := f.callCount("append"); n != 1 {
				t.Errorf("appends sent: got %d, want 1", n)
			}
			if c.want == esdb.ErrTooLarge {
				return
			}
			f.onReads(c.h, c.h)
			_, err = s.ReadStream(context.Background(), stream, eventstore.ReadOptions{})
			if !errors.Is(err, c.want) {
				t.Errorf("read: got %v, want %v", err, c.want)
			}
			if n := f.callCount("read"); n != 1 {
				t.Errorf("reads sent: got %d, want 1", n)
			}
		})
	}
}

// TestSubscriptionFromAnInvalidPosition: a checkpoint the server does not
// have ends the subscription at once, naming it, instead of resubscribing
// forever.
func TestSubscriptionFromAnInvalidPosition(t *testing.T) {
	t.Parallel()
	f := startFronts(t, esdbtest.Start(t), 1)[0]
	s := openOn(t, f.url())
	for range 5 {
		f.onSubscribes(fail(codes.InvalidArgument, "Trying to read from an invalid position."))
	}
	ctx := waitCtx(t)
	from := domain.Position{Commit: 123456, Prepare: 123456}
	err := s.SubscribeToAll(ctx, from, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error { return nil })
	if !errors.Is(err, esdb.ErrInvalidPosition) || !strings.Contains(err.Error(), from.String()) {
		t.Errorf("SubscribeToAll from a position the server lacks: got %v, want ErrInvalidPosition naming %v", err, from)
	}
	if n := f.callCount("subscribe"); n != 1 {
		t.Errorf("subscriptions tried: got %d, want 1", n)
	}

	// KDB-710's checkpoint, kept by an earlier version: a server starts
	// live at its end from there, skipping everything unapplied.
	bogus := domain.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}
	err = s.SubscribeToAll(ctx, bogus, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error { return nil })
	if !errors.Is(err, esdb.ErrInvalidPosition) {
		t.Errorf("SubscribeToAll from (2^64-1, 2^64-1): got %v, want ErrInvalidPosition", err)
	}
	if n := f.callCount("subscribe"); n != 1 {
		t.Errorf("subscriptions tried from (2^64-1, 2^64-1): got %d, want none", n-1)
	}
}

// TestReadAllRights: a user without the right to read $all is told so at
// start (CheckReadAll) and by the subscription, which does not retry; a
// node not ready yet is waited for.
func TestReadAllRights(t *testing.T) {
	t.Parallel()
	f := startFronts(t, esdbtest.Start(t), 1)[0]
	s := openOn(t, f.url())
	ctx := waitCtx(t)

	f.onSubscribes(fail(codes.Unavailable, "Server Is Not Ready"), fail(codes.Unknown, "No leader info available in response"))
	if err := s.CheckReadAll(ctx); err != nil {
		t.Errorf("CheckReadAll with the right, after two transient answers: got %v, want nil", err)
	}

	denied := fail(codes.PermissionDenied, "Access Denied")
	f.onSubscribes(denied)
	if err := s.CheckReadAll(ctx); !errors.Is(err, esdb.ErrAccessDenied) {
		t.Errorf("CheckReadAll without the right: got %v, want ErrAccessDenied", err)
	}
	before := f.callCount("subscribe")
	f.onSubscribes(denied, denied)
	err := s.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(context.Context, eventstore.Batch) error { return nil })
	if !errors.Is(err, esdb.ErrAccessDenied) {
		t.Errorf("SubscribeToAll without the right: got %v, want ErrAccessDenied", err)
	}
	if n := f.callCount("subscribe") - before; n != 1 {
		t.Errorf("subscriptions tried without the right: got %d, want 1", n)
	}
}

// TestCallsEndByTheirDeadline: a server that never answers keeps no call
// past its deadline, and a call without one gets the store's.
func TestCallsEndByTheirDeadline(t *testing.T) {
	t.Parallel()
	f := startFronts(t, esdbtest.Start(t), 1)[0]
	s := openOn(t, f.url(), esdb.WithCallTimeout(300*time.Millisecond))
	stream := eventstore.WorkspaceStream(uuid.New())
	for range 100 {
		f.onAppends(hang)
		f.onReads(hang)
	}
	for _, c := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"append", func(ctx context.Context) error {
			_, err := s.Append(ctx, stream, eventstore.Any{}, newEvent(0))
			return err
		}},
		{"read", func(ctx context.Context) error {
			_, err := s.ReadStream(ctx, stream, eventstore.ReadOptions{})
			return err
		}},
	} {
		for _, ctx := range []context.Context{context.Background(), shortContext(t)} {
			done := make(chan error, 1)
			go func() { done <- c.call(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) && codeOfStatus(err) != codes.DeadlineExceeded {
					t.Errorf("%s with a server that never answers: got %v, want a deadline error", c.name, err)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("%s with a server that never answers: still waiting after %v, want it back by its deadline", c.name, waitTimeout)
			}
		}
	}
}

func shortContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func codeOfStatus(err error) codes.Code {
	st, _ := status.FromError(err)
	return st.Code()
}

// TestForeignRecordsNeverStopAProjection: on a cluster shared with other
// applications, records in streams whose names start like ours but that
// usersd did not write are skipped; a projection's source decodes only
// ours and carries on.
func TestForeignRecordsNeverStopAProjection(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	raw := esdbtest.Client(t, srv.URL())
	ctx := waitCtx(t)

	foreign := func(stream string, meta string) {
		id := uuid.New()
		_, err := raw.AppendToStream(ctx, stream, esdbclient.AppendToStreamOptions{}, esdbclient.EventData{
			EventID: id, EventType: domain.EventName(domain.AccountRegistered{}), ContentType: esdbclient.ContentTypeJson,
			Data: []byte(`{"other": "shape"}`), Metadata: []byte(strings.ReplaceAll(meta, "ID", id.String())),
		})
		if err != nil {
			t.Fatalf("foreign append to %s: %v", stream, err)
		}
	}
	var want []uuid.UUID
	for i := range 3 {
		user := uuid.New()
		ev := domain.AccountRegistered{UserID: user, Email: "p@example.com"}
		meta := domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: time.Now().UTC()}
		data, err := testCodec.EncodeOne(ctx, ev, meta)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, testCodec.AccountStream(domain.Email(user.String()+"@example.com")), eventstore.NoStream{}, data); err != nil {
			t.Fatal(err)
		}
		want = append(want, meta.EventID)
		foreign(eventstore.WorkspaceStream(uuid.New()), `{"app": "billing"}`)               // our name, their metadata
		foreign("workspace-"+strings.Repeat("x", i+1), `{"eventId": "ID"}`)                 // our prefix, not our name
		foreign("account-"+uuid.NewString(), `{"eventId": "ID", "schemaVersion": 1}`)       // not an address hash
		foreign(eventstore.LoginsStream(uuid.New()), `{"eventId": "`+uuid.NewString()+`"}`) // another event's id
	}

	var got []uuid.UUID
	err := eventstore.Source{Store: s, Codec: testCodec}.Subscribe(ctx, domain.Position{}, 100, func(_ context.Context, b projections.Batch) error {
		for _, e := range b.Events {
			got = append(got, e.Metadata.EventID)
		}
		if b.CaughtUp {
			return context.Canceled
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("projection source over foreign records: got %v, want it to carry on to caught-up", err)
	}
	if len(got) != len(want) {
		t.Fatalf("events handed over: got %d, want our %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %s, want %s", i, got[i], want[i])
		}
	}
}
