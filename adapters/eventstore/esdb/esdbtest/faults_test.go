package esdbtest_test

import (
	"bytes"
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"

	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
)

// faults lists each injectable fault with the status a real server sends
// and the code the client makes of it.
var faults = []struct {
	fault esdbtest.Fault
	code  esdbclient.ErrorCode
	grpc  codes.Code
	msg   string
}{
	{esdbtest.Timeout, esdbclient.ErrorAborted, codes.Aborted, "Operation timed out: "},
	{esdbtest.NotReady, esdbclient.ErrorUnavailable, codes.Unavailable, "Server Is Not Ready"},
	{esdbtest.TooBusy, esdbclient.ErrorUnavailable, codes.Unavailable, "Server Is Too Busy"},
	{esdbtest.NoLeaderInfo, esdbclient.ErrorCodeUnknown, codes.Unknown, "No leader info available in response"},
	{esdbtest.NotLeader, esdbclient.ErrorCodeNotLeader, codes.NotFound, ""},
	{esdbtest.InvalidPosition, esdbclient.ErrorCodeUnknown, codes.InvalidArgument, "Trying to read from an invalid position."},
	{esdbtest.AccessDenied, esdbclient.ErrorCodeAccessDenied, codes.PermissionDenied, "Access Denied"},
}

// TestFaultsReachTheClientAsFromARealServer: each fault, on each kind of
// call, comes out of the official client as the same error as from a real
// server; the next call is served again.
func TestFaultsReachTheClientAsFromARealServer(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	mustAppend(t, c, "s", esdbclient.Any{}, event("Happened"))
	mustAppend(t, c, "d", esdbclient.Any{}, event("Happened"))
	calls := []struct {
		op   esdbtest.Op
		call func() error
	}{
		{esdbtest.OpAppend, func() error {
			_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, event("Happened"))
			return err
		}},
		{esdbtest.OpReadStream, func() error {
			_, err := readStream(timeout(t), c, "s")
			return err
		}},
		{esdbtest.OpReadAll, func() error {
			rs, err := c.ReadAll(timeout(t), esdbclient.ReadAllOptions{}, 10)
			if err != nil {
				return err
			}
			defer rs.Close()
			_, err = rs.Recv()
			return err
		}},
		{esdbtest.OpDelete, func() error {
			_, err := c.DeleteStream(timeout(t), "d", esdbclient.DeleteStreamOptions{})
			return err
		}},
	}
	for _, call := range calls {
		for _, f := range faults {
			srv.Inject(call.op, f.fault, 1)
			err := call.call()
			if codeOf(err) != f.code {
				t.Errorf("%v answered %v: got %v, want client code %d", call.op, f.fault, err, f.code)
			}
			if f.fault != esdbtest.NotLeader { // the client keeps only its code
				wantStatus(t, call.op.String()+" answered "+f.fault.String(), err, f.grpc, f.msg)
			}
			if err := call.call(); err != nil && codeOf(err) != esdbclient.ErrorCodeResourceNotFound {
				// (A failed call makes the client reconnect; the next one
				// is served.)
				t.Errorf("%v after one %v: got %v, want it served", call.op, f.fault, err)
			}
		}
	}
}

// TestSubscriptionFaults: rights are checked before the confirmation, so
// the client's SubscribeToAll fails with access denied; other errors come
// after it, as a dropped subscription carrying the status.
func TestSubscriptionFaults(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	for _, f := range faults {
		srv.Inject(esdbtest.OpSubscribe, f.fault, 1)
		sub, err := c.SubscribeToAll(timeout(t), ours(0, 0))
		if f.fault == esdbtest.AccessDenied {
			if codeOf(err) != esdbclient.ErrorCodeAccessDenied {
				t.Errorf("subscription denied: got %v, want ErrorCodeAccessDenied", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("subscription answered %v: got %v, want it confirmed, then dropped", f.fault, err)
			continue
		}
		got := recvUntil(t, sub, caughtUps(1))
		_ = sub.Close()
		if len(got) != 1 || got[0].kind != "dropped" {
			t.Errorf("subscription answered %v: got %v, want it dropped", f.fault, got)
			continue
		}
		wantStatus(t, "subscription answered "+f.fault.String(), got[0].err, f.grpc, f.msg)
	}
}

// TestFaultCounts: a fault answers as many calls as asked, or every call
// until cleared.
func TestFaultCounts(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	appendOnce := func() error {
		_, err := c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{}, event("Happened"))
		return err
	}
	srv.Inject(esdbtest.OpAppend, esdbtest.TooBusy, 2)
	for i, wantErr := range []bool{true, true, false} {
		if err := appendOnce(); (err != nil) != wantErr {
			t.Errorf("append %d with 2 faults injected: got %v, want error %v", i, err, wantErr)
		}
	}
	srv.Inject(esdbtest.OpAppend, esdbtest.Timeout, -1)
	for i := range 3 {
		if err := appendOnce(); codeOf(err) != esdbclient.ErrorAborted {
			t.Errorf("append %d until cleared: got %v, want ErrorAborted", i, err)
		}
	}
	srv.ClearFaults()
	if err := appendOnce(); err != nil {
		t.Errorf("append once cleared: %v", err)
	}
	if got, _ := readStream(timeout(t), c, "s"); len(got) != 2 {
		t.Errorf("stream: got %d events, want the 2 answered appends only", len(got))
	}
}

// TestSoftDeletedStream: reads answer "not found"; stream-exists answers
// "stream deleted"; any brings the stream back from the next revision.
func TestSoftDeletedStream(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	mustAppend(t, c, "s", esdbclient.NoStream{}, events(2)...)
	if _, err := c.DeleteStream(timeout(t), "s", esdbclient.DeleteStreamOptions{ExpectedRevision: esdbclient.Revision(0)}); codeOf(err) != esdbclient.ErrorCodeUnknown {
		t.Errorf("delete expecting the wrong revision: got %v, want the server's FailedPrecondition", err)
	}
	d, err := c.DeleteStream(timeout(t), "s", esdbclient.DeleteStreamOptions{ExpectedRevision: esdbclient.Revision(1)})
	if err != nil || d.Position.Commit == 0 {
		t.Fatalf("delete: got %+v, %v, want a position", d, err)
	}
	if _, err := readStream(timeout(t), c, "s"); codeOf(err) != esdbclient.ErrorCodeResourceNotFound {
		t.Errorf("read a soft-deleted stream: got %v, want ErrorCodeResourceNotFound", err)
	}
	_, err = c.AppendToStream(timeout(t), "s", esdbclient.AppendToStreamOptions{ExpectedRevision: esdbclient.StreamExists{}}, event("Back"))
	if codeOf(err) != esdbclient.ErrorCodeStreamDeleted {
		t.Errorf("append expecting the stream to exist: got %v, want ErrorCodeStreamDeleted", err)
	}
	back := event("Back")
	if w := mustAppend(t, c, "s", esdbclient.Any{}, back); w.NextExpectedVersion != 2 {
		t.Errorf("append after the delete: got revision %d, want 2", w.NextExpectedVersion)
	}
	got, err := readStream(timeout(t), c, "s")
	if err != nil || len(got) != 1 || got[0].EventID != back.EventID || got[0].EventNumber != 2 {
		t.Errorf("read it back: got %v, %v, want only the new event, at revision 2", idsOf(got), err)
	}
}

// TestTombstonedStream: reads and appends answer "stream deleted", and
// the tombstone shows in $all.
func TestTombstonedStream(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	mustAppend(t, c, "t", esdbclient.NoStream{}, events(1)...)
	if _, err := c.TombstoneStream(timeout(t), "t", esdbclient.TombstoneStreamOptions{ExpectedRevision: esdbclient.Revision(0)}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if _, err := readStream(timeout(t), c, "t"); codeOf(err) != esdbclient.ErrorCodeStreamDeleted {
		t.Errorf("read a tombstoned stream: got %v, want ErrorCodeStreamDeleted", err)
	}
	for _, expected := range []esdbclient.ExpectedRevision{esdbclient.Any{}, esdbclient.NoStream{}, esdbclient.Revision(1)} {
		_, err := c.AppendToStream(timeout(t), "t", esdbclient.AppendToStreamOptions{ExpectedRevision: expected}, event("Again"))
		if codeOf(err) != esdbclient.ErrorCodeStreamDeleted {
			t.Errorf("append expecting %v: got %v, want ErrorCodeStreamDeleted", expected, err)
		}
	}
	all := readAllEvents(t, c)
	if last := all[len(all)-1]; last.StreamID != "t" || last.EventType != "$streamDeleted" {
		t.Errorf("last record of $all: got %s in %s, want the tombstone", last.EventType, last.StreamID)
	}
}

// TestMaxAppendSize: servers up to 25.0 refuse appends over 1 MiB (data,
// metadata and twice the type's length, added up) and store nothing.
func TestMaxAppendSize(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	sized := func(n int) esdbclient.EventData {
		e := event("E")
		e.ContentType = esdbclient.ContentTypeBinary
		e.Data = bytes.Repeat([]byte{'x'}, n)
		return e
	}
	const limit = esdbtest.DefaultMaxAppendSize
	for _, tc := range []struct {
		name   string
		events []esdbclient.EventData
	}{
		{"one event a byte over", []esdbclient.EventData{sized(limit - 1)}},
		{"two events over together", []esdbclient.EventData{sized(limit / 2), sized(limit / 2)}},
	} {
		_, err := c.AppendToStream(timeout(t), "big", esdbclient.AppendToStreamOptions{}, tc.events...)
		if codeOf(err) != esdbclient.ErrorCodeUnknown {
			t.Errorf("%s: got %v, want the client's ErrorCodeUnknown", tc.name, err)
		}
		wantStatus(t, tc.name, err, codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded.")
	}
	if _, err := readStream(timeout(t), c, "big"); codeOf(err) != esdbclient.ErrorCodeResourceNotFound {
		t.Errorf("after the refused appends: got %v, want nothing stored", err)
	}
	mustAppend(t, c, "big", esdbclient.Any{}, sized(limit-2))

	unlimited := esdbtest.Start(t, esdbtest.WithMaxAppendSize(0))
	mustAppend(t, client(t, unlimited.URL()), "big", esdbclient.Any{}, sized(2*limit))
}
