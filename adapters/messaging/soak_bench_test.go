package messaging_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/messaging"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/projections/projectionstest"
	"github.com/usersd/usersd/projections/userlist"
)

// The soak's fixed bounds, whatever the number of invitations: no
// operational table ever holds more than soakPeakRows rows, and once every
// invitation is accepted and two sweeps have passed, none holds more than
// soakEndRows. The pipeline has at most soakInFlight invitations between
// the invite and the acceptance; the delivery log and the outbox also hold
// what was accepted during the last margin and sweep (a few seconds).
const (
	soakInFlight   = 1000
	soakPeakRows   = 20_000
	soakEndRows    = 0
	soakBatch      = 100 // addresses per invite command
	soakWorkspaces = 8   // workspaces invited into in turn
	soakPerWS      = 500 // invitations per workspace, then new ones
	// soakGeneration is the invitations into one set of workspaces.
	soakGeneration = soakWorkspaces * soakPerWS
)

// BenchmarkRetentionSoak runs invitations through the whole pipeline with
// the retention sweeper running: invite commands of 100 addresses (into
// eight workspaces in turn, eight new ones every 4,000: a generation) → events → outbox → the mailer → SMTP to an
// in-process server → the outcome recorded → the invitation accepted with
// the link of the e-mail (four clients) → the sweeper (every second,
// delivery rows kept 5 s once their link no longer works) prunes the
// delivery row and the message. Invitations are offered at a fixed rate;
// at most soakInFlight wait to be accepted, so a rate above what the
// machine manages slows the inviting to the pipeline's pace instead of
// piling up (the achieved rate is reported).
//
// It checks the bounds (soakPeakRows, soakEndRows) and reports the p50 of
// the user-facing latencies (the invite command, invite → e-mail in the
// inbox, the acceptance, a page of the user list) over the second
// generation (the first is warm-up) and over the last whole one, and their
// ratio: growth left unpruned would show as a ratio above 1. Comparing
// whole generations compares workspaces of the same sizes.
//
// USERSD_BENCH_SOAK_INVITATIONS sets the invitations (default 12,000),
// USERSD_BENCH_SOAK_RATE the invitations offered per second (default
// 100), USERSD_BENCH_SOAK_BUDGET bounds the inviting (default 10m),
// ending the run early with what was done. The full size is
// USERSD_BENCH_SOAK_INVITATIONS=1000000 USERSD_BENCH_SOAK_RATE=300
// USERSD_BENCH_SOAK_BUDGET=2h (docs/retention.md).
func BenchmarkRetentionSoak(b *testing.B) {
	n := testenv.PositiveInt(b, "USERSD_BENCH_SOAK_INVITATIONS", 12_000)
	rate := testenv.PositiveInt(b, "USERSD_BENCH_SOAK_RATE", 100)
	budget := 10 * time.Minute
	if v := os.Getenv("USERSD_BENCH_SOAK_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("USERSD_BENCH_SOAK_BUDGET=%q: want a positive Go duration", v)
		}
		budget = d
	}
	s := startSoak(b)
	done := s.run(n, rate, budget)
	s.report(done)
	b.ReportMetric(0, "ns/op")
}

// sample is a latency and the invitations invited when it was measured.
type sample struct {
	at int
	d  time.Duration
}

type samples struct {
	mu  sync.Mutex
	all []sample
}

func (s *samples) add(at int, d time.Duration) {
	s.mu.Lock()
	s.all = append(s.all, sample{at, d})
	s.mu.Unlock()
}

// p50 is the median of the samples measured while [from, to) invitations
// were invited.
func (s *samples) p50(from, to int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l projectionstest.Latencies
	for _, x := range s.all {
		if x.at >= from && x.at < to {
			l = append(l, x.d)
		}
	}
	if len(l) == 0 {
		return 0
	}
	return l.Percentile(50)
}

type soak struct {
	b       *testing.B
	pool    *pgxpool.Pool
	r       *replica
	sweeper *messaging.Sweeper
	ctx     context.Context

	invited   atomic.Int64 // invitations whose command returned
	accepted  atomic.Int64
	slots     chan struct{} // one per invitation waiting to be accepted
	tokens    chan mailedLink
	sentAt    sync.Map // address -> time the invite command started
	currentWS atomic.Pointer[commands.CreateWorkspaceResult]
	failures  atomic.Int64

	invite, email, accept, page samples

	mu   sync.Mutex
	peak map[string]int64

	wg sync.WaitGroup
}

func startSoak(b *testing.B) *soak {
	pool, _ := pgtest.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	s := &soak{b: b, pool: pool, ctx: ctx, slots: make(chan struct{}, soakInFlight), tokens: make(chan mailedLink, 2*soakInFlight), peak: map[string]int64{}}
	srv := smtptest.Start(b, smtptest.Options{Forget: true, Received: s.received})
	s.r = startReplica(b, pool, replicaOptions{smtpAddr: srv.Addr, logger: quiet})
	s.sweeper = newSweeper(s.r, pool, messaging.SweeperOptions{
		Interval: time.Second, Retention: messaging.Retention{Poison: 30 * 24 * time.Hour, Deliveries: 5 * time.Second, DevMailbox: 7 * 24 * time.Hour},
	})
	s.wg.Go(func() { _ = s.sweeper.Run(ctx) })
	for range 4 {
		s.wg.Go(s.acceptAll)
	}
	s.wg.Go(s.readPages)
	s.wg.Go(s.measure)
	b.Cleanup(func() { cancel(); s.wg.Wait() })
	return s
}

// received is the SMTP server's: it times the e-mail and hands its link to
// the acceptors.
func (s *soak) received(m smtptest.Message) {
	to := strings.ToLower(m.To[0])
	var i int
	if _, err := fmt.Sscanf(to, "soak%d@example.com", &i); err != nil {
		s.failures.Add(1)
		return
	}
	if t, ok := s.sentAt.LoadAndDelete(to); ok {
		s.email.add(i, time.Since(t.(time.Time)))
	}
	_, text, _, err := m.Parts()
	found := linkPattern.FindStringSubmatch(text)
	if err != nil || found == nil {
		s.failures.Add(1)
		return
	}
	s.tokens <- mailedLink{found[1], i}
}

// mailedLink is an e-mail's token and its invitation's number.
type mailedLink struct {
	token string
	i     int
}

func (s *soak) acceptAll() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case l := <-s.tokens:
			start := time.Now()
			_, err := s.r.app().Commands.AcceptInvitation.Handle(s.ctx, commands.AcceptInvitation{Token: l.token, Name: "Soak"})
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.failures.Add(1)
			}
			s.accept.add(l.i, time.Since(start))
			s.accepted.Add(1)
			<-s.slots
		}
	}
}

// readPages reads the first page of the current workspace's user list
// every 100 ms.
func (s *soak) readPages() {
	q := userlist.NewQueries(s.pool, time.Now)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		ws := s.currentWS.Load()
		if ws == nil {
			continue
		}
		start := time.Now()
		if _, err := q.List(s.ctx, ws.WorkspaceID, userlist.Filter{Limit: 50}); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.failures.Add(1)
			continue
		}
		s.page.add(int(s.invited.Load()), time.Since(start))
	}
}

// measure keeps each operational table's most rows, every second.
func (s *soak) measure() {
	for {
		if _, err := s.tables(); err != nil && s.ctx.Err() == nil {
			s.failures.Add(1)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// tables measures the operational tables and notes their peaks.
func (s *soak) tables() ([]messaging.TableStats, error) {
	stats, err := messaging.MeasureTables(s.ctx, s.pool, s.sweeper.Tables())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range stats {
		s.peak[t.Name] = max(s.peak[t.Name], t.Rows)
	}
	return stats, nil
}

// run invites n addresses at rate a second, or as many as budget allows,
// and waits until every one is accepted. It answers the invitations made.
func (s *soak) run(n, rate int, budget time.Duration) int {
	b := s.b
	start := time.Now()
	next := start
	done := 0
	var wss []commands.CreateWorkspaceResult
	for done < n && time.Since(start) < budget {
		if done%soakGeneration == 0 {
			wss = wss[:0]
			for range soakWorkspaces {
				wss = append(wss, s.r.workspace(b))
			}
		}
		ws := wss[done/soakBatch%soakWorkspaces]
		s.currentWS.Store(&ws)
		size := min(soakBatch, n-done)
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		} else if wait < -time.Second {
			next = time.Now() // behind: no burst to catch up
		}
		next = next.Add(time.Duration(size) * time.Second / time.Duration(rate))
		addrs := make([]string, size)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("soak%07d@example.com", done+i)
			s.slots <- struct{}{}
		}
		t := time.Now()
		for _, a := range addrs {
			s.sentAt.Store(a, t)
		}
		s.r.invite(b, ws, 0, addrs...)
		s.invite.add(done, time.Since(t))
		done += size
		s.invited.Store(int64(done))
	}
	inviting := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for s.accepted.Load() < int64(done) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d invitations accepted 5 minutes after the last invite", s.accepted.Load(), done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.ReportMetric(float64(done)/time.Since(start).Seconds(), "invitations/s")
	b.Logf("soak: %d invitations invited in %s, all accepted after %s", done, inviting.Round(time.Second), time.Since(start).Round(time.Second))
	return done
}

// report waits for the tables to drain to soakEndRows and reports.
func (s *soak) report(done int) {
	b := s.b
	deadline := time.Now().Add(2 * time.Minute)
	var end int64
	for {
		stats, err := s.tables()
		if err != nil {
			b.Fatal(err)
		}
		end = 0
		for _, t := range stats {
			end = max(end, t.Rows)
		}
		if end <= soakEndRows || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.mu.Lock()
	var peak int64
	var peakTable string
	for t, rows := range s.peak {
		if rows > peak {
			peak, peakTable = rows, t
		}
	}
	s.mu.Unlock()
	b.ReportMetric(float64(done), "invitations")
	b.ReportMetric(float64(peak), "peak-rows")
	b.ReportMetric(float64(end), "end-rows")
	if peak > soakPeakRows {
		b.Errorf("%s held %d rows at its peak, above the bound of %d", peakTable, peak, soakPeakRows)
	}
	if end > soakEndRows {
		b.Errorf("an operational table still holds %d rows two minutes after the last acceptance, above the bound of %d", end, soakEndRows)
	}
	if f := s.failures.Load(); f > 0 {
		b.Errorf("%d failed reads, acceptances or e-mails without a link", f)
	}
	if done < 3*soakGeneration {
		b.Logf("soak: %d invitations are fewer than three generations of %d: no latencies compared", done, soakGeneration)
		return
	}
	lastGen := (done/soakGeneration - 1) * soakGeneration
	worst := 0.0
	for _, l := range []struct {
		name string
		s    *samples
	}{{"invite", &s.invite}, {"email", &s.email}, {"accept", &s.accept}, {"page", &s.page}} {
		first, last := l.s.p50(soakGeneration, 2*soakGeneration), l.s.p50(lastGen, lastGen+soakGeneration)
		b.ReportMetric(ms(first), l.name+"-start-p50-ms")
		b.ReportMetric(ms(last), l.name+"-end-p50-ms")
		if first > 0 {
			r := float64(last) / float64(first)
			b.ReportMetric(r, l.name+"-end/start")
			worst = max(worst, r)
		}
	}
	b.ReportMetric(worst, "worst-end/start")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
