package esdbtest_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
)

func subscribe(t *testing.T, c *esdbclient.Client, opts esdbclient.SubscribeToAllOptions) *esdbclient.Subscription {
	t.Helper()
	sub, err := c.SubscribeToAll(timeout(t), opts)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func ours(window, multiplier int) esdbclient.SubscribeToAllOptions {
	return esdbclient.SubscribeToAllOptions{
		From:               esdbclient.Start{},
		Filter:             &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: []string{"ours-"}},
		MaxSearchWindow:    window,
		CheckpointInterval: multiplier,
	}
}

func checkpoint(commit, prepare uint64) message {
	return message{kind: "checkpoint", pos: esdbclient.Position{Commit: commit, Prepare: prepare}}
}

func eventAt(e *esdbclient.RecordedEvent) message {
	return message{kind: "event", pos: e.Position, id: e.EventID}
}

func wantMessages(t *testing.T, got, want []message) {
	t.Helper()
	render := func(ms []message) string {
		var b strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&b, "\n\t%s %d/%d", m.kind, m.pos.Commit, m.pos.Prepare)
			if m.err != nil {
				fmt.Fprintf(&b, " %v", m.err)
			}
		}
		return b.String()
	}
	if render(got) != render(want) {
		t.Errorf("messages: got%s\nwant%s", render(got), render(want))
	}
}

// TestCatchUpCheckpoints: during the catch-up, a checkpoint comes every
// window × multiplier records considered (as the client asked), matching
// or not; it is the last event sent or, after a page without a match, the
// start of that page (prepare 0); the last one, at the end of the
// catch-up, lags the end of the log.
func TestCatchUpCheckpoints(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	all := readAllEvents(t, c)
	if n := len(all); n != 7 {
		t.Fatalf("system records of a new server: got %d, want 7", n)
	}
	mustAppend(t, c, "foreign", esdbclient.Any{}, events(5)...)
	mustAppend(t, c, "ours-1", esdbclient.Any{}, events(1)...)
	for range 4 {
		mustAppend(t, c, "foreign", esdbclient.Any{}, events(5)...)
	}
	all = readAllEvents(t, c) // e0 … e32; e12 is ours
	if len(all) != 33 {
		t.Fatalf("$all: got %d events, want 33", len(all))
	}
	e := func(i int) uint64 { return all[i].Position.Commit }

	sub := subscribe(t, c, ours(4, 3)) // a checkpoint every 12 records
	got := recvUntil(t, sub, caughtUps(1))
	wantMessages(t, got, []message{
		checkpoint(e(8), 0), // pages e0-3, e4-7, e8-11: 12 considered
		eventAt(all[12]),
		checkpoint(e(20), 0), // pages e12-15, e16-19, e20-23
		checkpoint(e(32), 0), // the end: the start of the last page
		{kind: "caught-up"},
	})
}

// TestCatchUpCheckpointsWithoutMatches: the client's defaults (a window of
// 32, multiplier 1) over records that never match.
func TestCatchUpCheckpointsWithoutMatches(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	for range 7 {
		mustAppend(t, c, "foreign", esdbclient.Any{}, events(10)...)
	}
	all := readAllEvents(t, c) // 7 system records and 70
	sub := subscribe(t, c, ours(0, 0))
	wantMessages(t, recvUntil(t, sub, caughtUps(1)), []message{
		checkpoint(0, 0), // the first page, from the start of the log
		checkpoint(all[32].Position.Commit, 0),
		checkpoint(all[64].Position.Commit, 0),
		{kind: "caught-up"},
	})
}

// TestLiveCheckpoints: once live, a checkpoint at every interval-th record
// committed since the subscription started, at that record's position.
func TestLiveCheckpoints(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	sub := subscribe(t, c, ours(4, 1))
	recvUntil(t, sub, caughtUps(1))
	var ws []*esdbclient.WriteResult
	for range 8 {
		ws = append(ws, mustAppend(t, c, "foreign", esdbclient.Any{}, event("Other")))
	}
	last := event("Ours")
	w := mustAppend(t, c, "ours-1", esdbclient.Any{}, last)
	got := recvUntil(t, sub, eventsCame(1))
	wantMessages(t, got, []message{
		checkpoint(ws[3].CommitPosition, ws[3].PreparePosition),
		checkpoint(ws[7].CommitPosition, ws[7].PreparePosition),
		{kind: "event", pos: esdbclient.Position{Commit: w.CommitPosition, Prepare: w.PreparePosition}, id: last.EventID},
	})
}

// TestFallingBehindCatchesUpAgain: more than the live buffer at once makes
// the subscription fall behind: it catches up again and says caught-up a
// second time; no fell-behind reaches the client, and no event is lost or
// repeated.
func TestFallingBehindCatchesUpAgain(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	sub := subscribe(t, c, ours(0, 0))
	recvUntil(t, sub, caughtUps(1))
	evs := events(40)
	mustAppend(t, c, "ours-1", esdbclient.NoStream{}, evs...)
	got := recvUntil(t, sub, caughtUps(1))
	if n := len(ofKind(got, "fell-behind")); n != 0 {
		t.Errorf("fell-behind messages: got %d, want none (servers do not send it)", n)
	}
	var ids []uuid.UUID
	for _, m := range ofKind(got, "event") {
		ids = append(ids, m.id)
	}
	if len(ids) != len(evs) {
		t.Fatalf("events before the second caught-up: got %d, want %d", len(ids), len(evs))
	}
	for i, e := range evs {
		if ids[i] != e.EventID {
			t.Errorf("event %d: got %s, want %s", i, ids[i], e.EventID)
		}
	}
}

// TestUnfilteredSubscription: without a filter, every record comes, the
// server's own included, and no checkpoint.
func TestUnfilteredSubscription(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	mustAppend(t, c, "s", esdbclient.Any{}, events(3)...)
	srv.Scavenge()
	sub := subscribe(t, c, esdbclient.SubscribeToAllOptions{From: esdbclient.Start{}})
	got := recvUntil(t, sub, caughtUps(1))
	if n := len(ofKind(got, "checkpoint")); n != 0 {
		t.Errorf("checkpoints: got %d, want none without a filter", n)
	}
	if n, want := len(ofKind(got, "event")), len(readAllEvents(t, c)); n != want {
		t.Errorf("events: got %d, want all %d of $all", n, want)
	}
}

// TestSystemRecordsInAll: a new server's $all starts with its own records,
// and scavenges and statistics add more between the clients' events.
func TestSystemRecordsInAll(t *testing.T) {
	t.Parallel()
	srv, c := connect(t)
	all := readAllEvents(t, c)
	if len(all) == 0 || all[0].StreamID != "$epoch-information" || all[0].Position.Commit == 0 {
		t.Fatalf("first record: got %+v, want an $epoch-information event after the epoch record", all)
	}
	for _, e := range all {
		if !strings.HasPrefix(e.StreamID, "$") || !strings.HasPrefix(e.EventType, "$") {
			t.Errorf("record of a new server in %s of type %s: want system streams and types only", e.StreamID, e.EventType)
		}
	}
	mustAppend(t, c, "s", esdbclient.Any{}, event("Mine"))
	srv.Scavenge()
	srv.WriteStats()
	mustAppend(t, c, "s", esdbclient.Any{}, event("Mine"))
	streams := map[string]bool{}
	for _, e := range readAllEvents(t, c)[len(all):] {
		streams[strings.SplitN(e.StreamID, "-", 2)[0]] = true
	}
	for _, want := range []string{"s", "$scavenges", "$stats"} {
		if !streams[want] {
			t.Errorf("$all after a scavenge and statistics: no %s record among %v", want, streams)
		}
	}
}

// TestInvalidPosition: a position inside a record is refused, by a read
// before anything comes and by a subscription after its confirmation, as
// by a real server; (2^64-1, 2^64-1) is the server's end of the log.
func TestInvalidPosition(t *testing.T) {
	t.Parallel()
	_, c := connect(t)
	w := mustAppend(t, c, "s", esdbclient.Any{}, events(1)...)
	mustAppend(t, c, "s", esdbclient.Any{}, events(2)...)
	// (A position past the last record is no error: the subscription
	// waits there, live.)
	inside := esdbclient.Position{Commit: w.CommitPosition + 1, Prepare: w.CommitPosition + 1}

	rs, err := c.ReadAll(timeout(t), esdbclient.ReadAllOptions{From: inside}, 10)
	if err == nil {
		_, err = rs.Recv()
		rs.Close()
	}
	if codeOf(err) != esdbclient.ErrorCodeUnknown {
		t.Errorf("read from inside a record: got %v, want ErrorCodeUnknown", err)
	}
	wantStatus(t, "read from inside a record", err, codes.InvalidArgument, "Trying to read from an invalid position.")

	sub := subscribe(t, c, esdbclient.SubscribeToAllOptions{From: inside, Filter: esdbclient.ExcludeSystemEventsFilter()})
	got := recvUntil(t, sub, caughtUps(1))
	if len(got) != 1 || got[0].kind != "dropped" {
		t.Fatalf("subscription from inside a record: got %v, want it dropped", got)
	}
	wantStatus(t, "subscription from inside a record", got[0].err, codes.InvalidArgument, "Trying to read from an invalid position.")

	// The checkpoint of KDB-710 is the server's end of the log: the
	// subscription starts live, past every stored event.
	end := esdbclient.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}
	sub = subscribe(t, c, esdbclient.SubscribeToAllOptions{From: end, Filter: esdbclient.ExcludeSystemEventsFilter()})
	if got := recvUntil(t, sub, caughtUps(1)); len(got) != 1 {
		t.Errorf("subscription from (2^64-1, 2^64-1): got %v, want caught-up at once", got)
	}
	later := event("Later")
	mustAppend(t, c, "s", esdbclient.Any{}, later)
	wantOnlyEvent(t, sub, later.EventID, "then")
}
