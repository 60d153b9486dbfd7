package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/esdb"
	"github.com/usersd/usersd/adapters/eventstore/esdb/esdbtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

func starts(n int) []eventstore.StreamStart {
	out := make([]eventstore.StreamStart, n)
	for i := range out {
		out[i] = eventstore.StreamStart{Stream: testCodec.AccountStream(domain.Email(fmt.Sprintf("p%d-%s@example.com", i, uuid.NewString()))), Event: newEvent(i)}
	}
	return out
}

// TestStartStreams: new streams are started with their event, streams
// someone else started are left alone and reported so, a repeat of a
// whole call (its answer lost) finds its own events, and malformed calls
// store nothing.
func TestStartStreams(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	ctx := context.Background()

	all := starts(40)
	taken := all[:10]
	if _, err := s.StartStreams(ctx, taken); err != nil {
		t.Fatal(err)
	}
	theirs := make([]eventstore.StreamStart, len(all))
	copy(theirs, all)
	for i := range taken {
		theirs[i].Event = newEvent(100 + i) // another start of the same streams
	}
	started, err := s.StartStreams(ctx, theirs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range started {
		if want := i >= len(taken); ok != want {
			t.Errorf("stream %d: got started %v, want %v", i, ok, want)
		}
	}
	// The same call again: every stream holds the call's own event.
	again, err := s.StartStreams(ctx, all[len(taken):])
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range again {
		if !ok {
			t.Errorf("repeat, stream %d: got not started, want started (its first event is this one)", i)
		}
	}
	for i, st := range all {
		got, err := s.ReadStream(ctx, st.Stream, eventstore.ReadOptions{})
		if err != nil || len(got) != 1 || got[0].ID != st.Event.ID {
			t.Errorf("stream %d: got %d events (%v), want exactly its first start's event", i, len(got), err)
		}
	}
	if got, want := srv.Len(), len(all); got != want {
		t.Errorf("events stored: got %d, want %d", got, want)
	}

	dup := starts(2)
	dup[1].Stream = dup[0].Stream
	bad := starts(2)
	bad[1].Event.Data = []byte("not json")
	for _, call := range [][]eventstore.StreamStart{dup, bad} {
		if _, err := s.StartStreams(ctx, call); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("StartStreams(malformed): got %v, want ErrInvalidAppend", err)
		}
	}
	if got, want := srv.Len(), len(all); got != want {
		t.Errorf("events stored after malformed calls: got %d, want still %d", got, want)
	}
}

// TestAccountsOnESDB: two registries reserving the same new addresses at
// once agree on one user id per address.
func TestAccountsOnESDB(t *testing.T) {
	t.Parallel()
	srv, s := startDefault(t)
	emails := make([]domain.Email, 50)
	for i := range emails {
		emails[i] = domain.Email(fmt.Sprintf("same-%d@example.com", i))
	}
	meta := func(domain.Event) domain.Metadata {
		return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: time.Now().UTC()}
	}
	var (
		wg  sync.WaitGroup
		got [2]map[domain.Email]uuid.UUID
		err [2]error
	)
	for i := range got {
		wg.Go(func() {
			got[i], err[i] = eventstore.NewAccounts(s, testCodec, 10).Resolve(context.Background(), emails, uuid.New, meta)
		})
	}
	wg.Wait()
	if err[0] != nil || err[1] != nil {
		t.Fatalf("Resolve: %v, %v", err[0], err[1])
	}
	for _, e := range emails {
		if got[0][e] != got[1][e] || got[0][e] == uuid.Nil {
			t.Errorf("%s: got %s and %s, want one id", e, got[0][e], got[1][e])
		}
	}
	if got := srv.Len(); got != len(emails) {
		t.Errorf("reservations stored: got %d, want %d", got, len(emails))
	}
}

// streamByStream hides StartStreams: the account registry then appends
// stream by stream, 8 at once, as it did before the store had it.
type streamByStream struct{ eventstore.Store }

// BenchmarkReserve500 reserves a batch of 500 new addresses, as an
// invitation of 500 people does, against the test server directly and
// through a link that delays every packet by 1 ms each way (a network
// round trip of 2 ms, as between nodes of a cluster in one region). Each
// address is one append either way (appends/op); what changes is how many
// run at once.
func BenchmarkReserve500(b *testing.B) {
	const batch = 500
	for _, delay := range []time.Duration{0, time.Millisecond} {
		for _, c := range []struct {
			name string
			wrap func(*esdb.Store) eventstore.Store
		}{
			{"stream by stream (8 at once)", func(s *esdb.Store) eventstore.Store { return streamByStream{s} }},
			{"StartStreams (32 at once)", func(s *esdb.Store) eventstore.Store { return s }},
		} {
			b.Run(fmt.Sprintf("delay=%v/%s", delay, c.name), func(b *testing.B) {
				srv := esdbtest.Start(b)
				url := srv.URL()
				if delay > 0 {
					url = "esdb://" + delayed(b, srv.Addr(), delay) + "?tls=false"
				}
				s, err := esdb.Open(url)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(s.Close)
				accounts := eventstore.NewAccounts(c.wrap(s), testCodec, 0)
				meta := func(domain.Event) domain.Metadata {
					return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: time.Now().UTC()}
				}
				ctx := context.Background()
				b.ResetTimer()
				for range b.N {
					emails := make([]domain.Email, batch)
					for i := range emails {
						emails[i] = domain.Email(uuid.NewString() + "@example.com")
					}
					if _, err := accounts.Resolve(ctx, emails, uuid.New, meta); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(srv.Len())/float64(b.N), "appends/op")
			})
		}
	}
}

// delayed starts a TCP relay to addr that holds every chunk for d in each
// direction, and returns its address.
func delayed(tb testing.TB, addr string, d time.Duration) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lis.Close() })
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			tb.Cleanup(func() { in.Close(); out.Close() })
			go relay(in, out, d)
			go relay(out, in, d)
		}
	}()
	return lis.Addr().String()
}

// relay copies src to dst, each chunk d after it arrived.
func relay(src io.Reader, dst io.WriteCloser, d time.Duration) {
	type chunk struct {
		data []byte
		at   time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}

// testCodec seals the tests' events, as one keyring shared by replicas.
var testCodec = eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("the esdb tests' stream-name key."))
