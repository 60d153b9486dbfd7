package feed_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/feed"
)

// history is n events in two workspaces, alternating types, with an
// account event every 7th.
func history(n int) projections.SliceSource {
	other := uuid.New()
	out := make(projections.SliceSource, n)
	for i := range out {
		var e domain.Event
		switch {
		case i%7 == 6:
			e = domain.AccountRegistered{UserID: uuid.New(), Email: "x@example.com"}
		case i%2 == 0:
			e = domain.UserLoggedIn{WorkspaceID: ws, UserID: bob, LoggedInAt: at}
		default:
			e = domain.MemberSuspended{WorkspaceID: other, UserID: bob, Role: "member"}
		}
		out[i] = domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{EventID: uuid.New(), OccurredAt: at}},
			Position: domain.Position{Commit: uint64(i/3 + 1), Prepare: uint64(i)},
		}
	}
	return out
}

// sink records what a feed writes and how often it flushes.
type sink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	flushes int
	failAt  int // fail the write that would pass this many bytes; 0: never
	flushed chan struct{}
}

func (s *sink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && s.buf.Len()+len(b) > s.failAt {
		return 0, errors.New("client gone")
	}
	return s.buf.Write(b)
}

func (s *sink) Flush() error {
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
	if s.flushed != nil {
		select {
		case s.flushed <- struct{}{}:
		default:
		}
	}
	return nil
}

// lines parses what was written: each line's type and position.
func (s *sink) lines(t *testing.T) []line {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(s.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	if n := s.buf.Len(); n > 0 && s.buf.Bytes()[n-1] != '\n' {
		t.Errorf("the output does not end with a newline")
	}
	return out
}

type line struct {
	Type, Position, WorkspaceID string
}

func TestCopyToTheEnd(t *testing.T) {
	t.Parallel()
	h := history(2500)
	cases := []struct {
		name string
		q    feed.Query
		keep func(i int) bool
	}{
		{"everything", feed.Query{}, func(int) bool { return true }},
		{"after", feed.Query{After: h[1200].Position}, func(i int) bool { return i > 1200 }},
		{"types", feed.Query{Filter: feed.Filter{Types: []string{"AccountRegistered"}}}, func(i int) bool { return i%7 == 6 }},
		{"workspace", feed.Query{Filter: feed.Filter{Workspace: ws}}, func(i int) bool { return i%7 != 6 && i%2 == 0 }},
		{"limit", feed.Query{Limit: 1001, BatchSize: 100}, func(i int) bool { return i < 1001 }},
		{"after the end", feed.Query{After: h[len(h)-1].Position}, func(int) bool { return false }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			last := c.q.After
			for i, ev := range h {
				if ev.Position.Compare(c.q.After) > 0 && c.keep(i) && (c.q.Limit == 0 || len(want) < c.q.Limit) {
					want = append(want, ev.Position.String())
					last = ev.Position
				}
			}
			if c.q.Limit == 0 && len(h) > 0 {
				last = h[len(h)-1].Position
			}
			var s sink
			res, err := feed.Copy(context.Background(), h, c.q, &s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range s.lines(t) {
				if l.Type == feed.HeartbeatType {
					t.Fatalf("a feed that does not follow wrote a heartbeat")
				}
				got = append(got, l.Position)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("got %d events, want %d", len(got), len(want))
			}
			if res.Events != len(want) || res.Reached != last {
				t.Errorf("result %+v, want %d events reaching %s", res, len(want), last)
			}
		})
	}
}

// TestCopyResumes cuts a feed at random points (its limit) and resumes from
// what it reached: every event once, in order.
func TestCopyResumes(t *testing.T) {
	t.Parallel()
	h := history(3000)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []feed.Filter{{}, {Workspace: ws}, {Types: []string{"MemberSuspended", "AccountRegistered"}}} {
		var got, want []string
		for _, ev := range h {
			if f.Keeps(ev) {
				want = append(want, ev.Position.String())
			}
		}
		from := domain.Position{}
		for range 1000 {
			var s sink
			res, err := feed.Copy(context.Background(), h, feed.Query{After: from, Filter: f, Limit: 1 + rng.IntN(300), BatchSize: 1 + rng.IntN(200)}, &s)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range s.lines(t) {
				got = append(got, l.Position)
			}
			if res.Reached == from && res.Events == 0 {
				break
			}
			from = res.Reached
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("filter %+v: resumed feeds gave %d events, want each of %d once in order", f, len(got), len(want))
		}
	}
}

func TestCopyFollows(t *testing.T) {
	t.Parallel()
	h := history(50)
	stop := make(chan struct{})
	s := &sink{flushed: make(chan struct{}, 1)}
	done := make(chan error, 1)
	var res feed.Result
	go func() {
		var err error
		res, err = feed.Copy(context.Background(), h, feed.Query{Follow: true, Heartbeat: 5 * time.Millisecond, Stop: stop, Filter: feed.Filter{Workspace: ws}}, s)
		done <- err
	}()
	// Heartbeats come while nothing new does.
	for {
		<-s.flushed
		n := 0
		for _, l := range s.lines(t) {
			if l.Type == feed.HeartbeatType {
				n++
			}
		}
		if n >= 3 {
			break
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := s.lines(t)
	end := h[len(h)-1].Position.String()
	if last := lines[len(lines)-1]; last.Type != feed.HeartbeatType || last.Position != end {
		t.Errorf("last line %+v, want a heartbeat at %s", last, end)
	}
	// A heartbeat tells the position reached so far: never behind an event
	// line before it, never behind an earlier heartbeat. One may come before
	// the first batch is read (a loaded machine), at the start.
	events := 0
	var reached domain.Position
	for _, l := range lines {
		p, err := domain.ParsePosition(l.Position)
		if err != nil {
			t.Fatalf("line %+v: %v", l, err)
		}
		if l.Type != feed.HeartbeatType {
			events++
		} else if p.Less(reached) {
			t.Errorf("heartbeat at %s after a line at %s: want the position reached", p, reached)
		}
		if reached.Less(p) {
			reached = p
		}
	}
	if events != res.Events || events == 0 {
		t.Errorf("%d event lines, result says %d", events, res.Events)
	}
}

func TestCopyEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{flushed: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := feed.Copy(ctx, history(10), feed.Query{Follow: true}, s)
		done <- err
	}()
	<-s.flushed // the headers
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Copy = %v, want context.Canceled", err)
	}
}

func TestCopyReturnsTheSinksError(t *testing.T) {
	t.Parallel()
	s := &sink{failAt: 1000}
	_, err := feed.Copy(context.Background(), history(5000), feed.Query{BatchSize: 10}, s)
	if err == nil || err.Error() != "client gone" {
		t.Errorf("Copy = %v, want the write's error", err)
	}
}

// failing is a source that fails after one batch.
type failing struct{ h projections.SliceSource }

func (f failing) Subscribe(ctx context.Context, from domain.Position, size int, h func(context.Context, projections.Batch) error) error {
	if err := h(ctx, projections.Batch{Events: f.h[:size], Checkpoint: f.h[size-1].Position}); err != nil {
		return err
	}
	return errors.New("the store is down")
}

func TestCopyReturnsTheSourcesError(t *testing.T) {
	t.Parallel()
	var s sink
	_, err := feed.Copy(context.Background(), failing{history(20)}, feed.Query{BatchSize: 10}, &s)
	if err == nil || !strings.Contains(err.Error(), "the store is down") {
		t.Errorf("Copy = %v, want the source's error", err)
	}
}
