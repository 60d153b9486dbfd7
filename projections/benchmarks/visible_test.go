package benchmarks_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

const (
	loadWorkspaces       = 50
	membersPerWorkspace  = 20
	loadWarmup           = time.Second
	loadRun              = 5 * time.Second
	loadWorkers          = 1000
	loadTimeout          = 30 * time.Second // per command, until visible
	floorChannel         = "usersd_bench_floor"
	floorIdleSamples     = 1000
	floorLoadedInterval  = 10 * time.Millisecond
	visibleGoalRate      = 1000
	visibleGoalFloorMult = 3.0
)

// visibleGoals are issue 19's append-to-visible p99 goals, by rate.
var visibleGoals = map[int]time.Duration{1000: 20 * time.Millisecond, 2000: 50 * time.Millisecond}

// loadRoles are the roles the load moves people to: never Admin, so no
// command trips the last-Admin guard or an escalation rule.
var loadRoles = []domain.Role{domain.RoleManager, domain.RoleEditor, domain.RoleMonitor, domain.RoleAgentUser}

// BenchmarkAppendToVisible runs the write and read pipeline of `usersd
// serve` on one database (the PostgreSQL event store, the command handlers,
// the three projection runners, a Waiter) and loads it open-loop: commands
// are due on a fixed schedule, whatever the previous ones are doing, and
// each one's lag runs from when it was due until Waiter.WaitFor(position,
// "userlist") returns, so queueing anywhere counts. A command is a role
// change of a member or an invitation of a new address, half and half, in
// one of 50 workspaces of 20 members.
//
// Beside it, in the same run, the floor: a LISTEN/NOTIFY round trip
// between two connections, measured idle right before the load and every
// 10 ms during it. After the run, once the user list has caught up with
// every command that succeeded, every member's role and every invitation is
// checked in it: a row that disagrees is an event skipped or lost, and
// fails the benchmark.
func BenchmarkAppendToVisible(b *testing.B) {
	for _, rate := range []int{500, visibleGoalRate, 2000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchVisible(b, rate) })
	}
}

// pipeline is the service's write and read side on one database.
type pipeline struct {
	pool    *pgxpool.Pool
	secrets commands.LinkSecrets
	waiter  *projections.Waiter
	// read and committed record when the user list's runner received each
	// batch from its subscription and when it committed it, to split the
	// lag into stages.
	read, committed *deliveries
	app             commands.Commands
}

// startPipeline wires the pieces as cmd/usersd/serve.go does.
func startPipeline(b *testing.B, ctx context.Context) (*pipeline, string) {
	pool, url := pgtest.New(b)
	log := quietLogger()
	store := pgstore.New(pool, pgstore.WithLogger(log))
	deps := eventstoretest.DepsWithCaches(store, testCodec, commands.EphemeralLinkSecrets(), eventstoretest.ServeCaches)
	src := eventstore.Source{Store: store, Codec: testCodec}
	read, committed := &deliveries{}, &deliveries{}
	waiter := startReadSide(b, ctx, pool, store, src, log, func(name string, s *projections.Source, opts *projections.RunnerOptions) {
		if name == "userlist" {
			*s = tracedSource{src, read}
			opts.OnProgress = func(pr projections.Progress) {
				if pr.Applied > 0 {
					committed.record(pr.Checkpoint)
				}
			}
		}
	})
	return &pipeline{
		pool: pool, secrets: deps.Secrets, waiter: waiter, read: read, committed: committed,
		app: commands.NewApplication(deps, commands.DefaultInvitationPolicy(), commands.Instrumentation{}).Commands,
	}, url
}

type loadWorkspace struct {
	id, owner uuid.UUID
	members   []uuid.UUID
	roles     []domain.Role // as seeded
}

// seedWorkspaces creates the workspaces, each with members who were
// invited and accepted, and waits until the user list shows them.
func (p *pipeline) seedWorkspaces(b *testing.B, ctx context.Context) []*loadWorkspace {
	wss := make([]*loadWorkspace, loadWorkspaces)
	last := inParallel(b, len(wss), 8, func(i int) (domain.Position, error) {
		w, pos, err := p.seedWorkspace(ctx, i)
		wss[i] = w
		return pos, err
	})
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.waiter.WaitFor(wctx, last, "userlist", "memberships", "audit"); err != nil {
		b.Fatalf("wait for the seeded workspaces: %v", err)
	}
	return wss
}

func (p *pipeline) seedWorkspace(ctx context.Context, i int) (*loadWorkspace, domain.Position, error) {
	system := commands.Meta{Actor: domain.Actor{System: true}, CorrelationID: "bench-seed"}
	res, err := p.app.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
		Name: fmt.Sprintf("Load workspace %d", i), OwnerEmail: fmt.Sprintf("owner.%d@load.example.com", i), OwnerName: "Owner", Meta: system,
	})
	if err != nil {
		return nil, domain.Position{}, err
	}
	w := &loadWorkspace{id: res.WorkspaceID, owner: res.OwnerUserID}
	emails := make([]string, membersPerWorkspace)
	for j := range emails {
		emails[j] = fmt.Sprintf("member.%d.%d@load.example.com", i, j)
	}
	owner := commands.Meta{Actor: domain.Actor{UserID: w.owner}, CorrelationID: "bench-seed"}
	inv, err := p.app.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: w.id, Emails: emails, Role: string(domain.RoleEditor), Meta: owner})
	if err != nil {
		return nil, domain.Position{}, err
	}
	pos := inv.Position
	for _, r := range inv.Results {
		if r.Outcome != domain.OutcomeInvited {
			return nil, domain.Position{}, fmt.Errorf("invite %s: %s %s", r.Email, r.Outcome, r.Detail)
		}
		acc, err := p.app.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: commands.InvitationLinkToken(p.secrets, w.id, r.InvitationID, 1), Name: "Member " + r.Email[:10], Meta: commands.Meta{CorrelationID: "bench-seed"}})
		if err != nil {
			return nil, domain.Position{}, err
		}
		w.members, w.roles, pos = append(w.members, acc.UserID), append(w.roles, acc.Role), acc.Position
	}
	return w, pos, nil
}

// loadCommand is one command of the load: an invitation of email, or a
// role change of a workspace's member.
type loadCommand struct {
	ws     int
	invite bool
	member int
	email  string
	role   domain.Role
}

func planLoad(r *rand.Rand, n int, tag string) []loadCommand {
	cmds := make([]loadCommand, n)
	for i := range cmds {
		c := loadCommand{ws: r.IntN(loadWorkspaces), invite: r.IntN(2) == 0, role: loadRoles[r.IntN(len(loadRoles))]}
		if c.invite {
			c.email = fmt.Sprintf("invitee.%s.%d@load.example.com", tag, i)
		} else {
			c.member = r.IntN(membersPerWorkspace)
		}
		cmds[i] = c
	}
	return cmds
}

// loadResult is what became of one command.
type loadResult struct {
	due, handled, visible time.Time
	pos                   domain.Position
	user                  uuid.UUID // the invitee
	err                   error     // the command failed
	waitErr               error     // it succeeded but did not show in time
}

// runLoad issues cmds open-loop at rate per second: a ticker-driven
// dispatcher hands each command to a pool of workers when it is due. It
// returns when every command is done, and answers the most commands that
// were in flight at once.
func (p *pipeline) runLoad(ctx context.Context, wss []*loadWorkspace, cmds []loadCommand, rate int) ([]loadResult, int64) {
	results := make([]loadResult, len(cmds))
	jobs := make(chan int, len(cmds)) // never blocks the dispatcher
	var inFlight, maxInFlight atomic.Int64
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for i := range jobs {
				n := inFlight.Add(1)
				for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				p.execute(ctx, wss[cmds[i].ws], cmds[i], &results[i])
				inFlight.Add(-1)
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(time.Millisecond)
	start := time.Now()
	for i := 0; i < len(cmds); {
		now := <-tick.C
		for ; i < len(cmds); i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) {
				break
			}
			results[i].due = due
			jobs <- i
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	return results, maxInFlight.Load()
}

func (p *pipeline) execute(ctx context.Context, w *loadWorkspace, c loadCommand, r *loadResult) {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	meta := commands.Meta{Actor: domain.Actor{UserID: w.owner}, CorrelationID: "bench-load"}
	if c.invite {
		res, err := p.app.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: w.id, Emails: []string{c.email}, Role: string(c.role), Meta: meta})
		if err == nil && (len(res.Results) != 1 || res.Results[0].Outcome != domain.OutcomeInvited) {
			err = fmt.Errorf("invite %s: %+v", c.email, res.Results)
		}
		r.err, r.pos = err, res.Position
		if err == nil {
			r.user = res.Results[0].UserID
		}
	} else {
		r.pos, r.err = p.app.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: w.id, UserID: w.members[c.member], Role: string(c.role), Meta: meta})
	}
	r.handled = time.Now()
	if r.err != nil {
		return
	}
	r.waitErr = p.waiter.WaitFor(ctx, r.pos, "userlist")
	r.visible = time.Now()
}

// verify checks the user list against every command that succeeded: each
// member holds the role of their last role change (the one at the highest
// position; a workspace's commands are decided one after the other), each
// invitee is listed as invited with the role invited with. It answers the
// number of rows that are missing or wrong.
func (p *pipeline) verify(b *testing.B, ctx context.Context, wss []*loadWorkspace, cmds []loadCommand, results []loadResult) int {
	type key struct{ ws, user uuid.UUID }
	type row struct {
		email, role, status string
	}
	rows, err := p.pool.Query(ctx, `SELECT workspace_id, user_id, email, role, status FROM userlist_users`)
	if err != nil {
		b.Fatal(err)
	}
	got := make(map[key]row)
	var k key
	var r row
	if _, err := pgx.ForEachRow(rows, []any{&k.ws, &k.user, &r.email, &r.role, &r.status}, func() error {
		got[k] = r
		return nil
	}); err != nil {
		b.Fatal(err)
	}

	type change struct {
		pos  domain.Position
		role domain.Role
		set  bool
	}
	last := make(map[key]change)
	bad := 0
	for i, c := range cmds {
		res := results[i]
		if res.err != nil {
			continue
		}
		w := wss[c.ws]
		if c.invite {
			if g, ok := got[key{w.id, res.user}]; !ok || g.email != c.email || g.role != string(c.role) || g.status != string(domain.StatusInvited) {
				bad++
			}
			continue
		}
		k := key{w.id, w.members[c.member]}
		if l := last[k]; !l.set || l.pos.Less(res.pos) {
			last[k] = change{pos: res.pos, role: c.role, set: true}
		}
	}
	for _, w := range wss {
		for j, m := range w.members {
			want := w.roles[j]
			if l, ok := last[key{w.id, m}]; ok {
				want = l.role
			}
			if g, ok := got[key{w.id, m}]; !ok || g.role != string(want) || g.status != string(domain.StatusActive) {
				bad++
			}
		}
	}
	return bad
}

func benchVisible(b *testing.B, rate int) {
	ctx := context.Background()
	p, url := startPipeline(b, ctx)
	wss := p.seedWorkspaces(b, ctx)
	probe := newNotifyProbe(b, ctx, url)
	r := rand.New(rand.NewPCG(uint64(rate), 7))

	warm := planLoad(r, rate*int(loadWarmup/time.Second), "warm")
	warmRes, _ := p.runLoad(ctx, wss, warm, rate)

	idle := make(latencies, 0, floorIdleSamples)
	for range floorIdleSamples {
		idle = append(idle, probe.roundTrip(b, ctx))
	}

	cmds := planLoad(r, rate*int(loadRun/time.Second), "run")
	var loaded latencies
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		t := time.NewTicker(floorLoadedInterval)
		defer t.Stop()
		for {
			select {
			case <-probeCtx.Done():
				return
			case <-t.C:
				loaded = append(loaded, probe.roundTrip(b, ctx))
			}
		}
	}()
	before := p.pool.Stat()
	start := time.Now()
	results, maxInFlight := p.runLoad(ctx, wss, cmds, rate)
	after := p.pool.Stat()
	stopProbe()
	<-probeDone

	var lag, handled, visible, read, applied, notified latencies
	var failed, notVisible int
	var end time.Time
	for _, res := range results {
		switch {
		case res.err != nil:
			failed++
			if failed <= 3 {
				b.Logf("command failed: %v", res.err)
			}
		case res.waitErr != nil:
			notVisible++
			if notVisible <= 3 {
				b.Logf("not visible in time: %v", res.waitErr)
			}
		default:
			lag = append(lag, res.visible.Sub(res.due))
			handled = append(handled, res.handled.Sub(res.due))
			visible = append(visible, res.visible.Sub(res.handled))
			// The subscription may read the event before the command
			// handler has returned to the caller: such a stage counts 0.
			readAt, committedAt := p.read.at(res.pos), p.committed.at(res.pos)
			if readAt.Before(res.handled) {
				readAt = res.handled
			}
			// The runner reports a commit after the waiter may have seen
			// it: the last batch's report can still be on its way.
			if committedAt.IsZero() || committedAt.After(res.visible) {
				committedAt = res.visible
			}
			read = append(read, readAt.Sub(res.handled))
			applied = append(applied, committedAt.Sub(readAt))
			notified = append(notified, res.visible.Sub(committedAt))
			if res.visible.After(end) {
				end = res.visible
			}
		}
	}
	for _, res := range warmRes {
		if res.err != nil {
			failed++
		} else if res.waitErr != nil {
			notVisible++
		}
	}
	// Skipped or lost events show as rows that disagree with the commands
	// that succeeded, once the user list has caught up with all of them
	// (a command that was merely late is not skipped).
	var last domain.Position
	for _, res := range append(warmRes, results...) {
		if res.err == nil && last.Less(res.pos) {
			last = res.pos
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	if err := p.waiter.WaitFor(wctx, last, "userlist"); err != nil {
		b.Errorf("the user list did not reach the last command's position %s within a minute: %v", last, err)
	}
	cancel()
	missing := p.verify(b, ctx, wss, append(warm, cmds...), append(warmRes, results...))
	if missing > 0 {
		b.Errorf("%d user-list rows disagree with the commands that succeeded: events were skipped or lost", missing)
	}
	achieved := float64(len(lag)) / end.Sub(start).Seconds()

	p50, p99 := lag.Percentile(50), lag.Percentile(99)
	f50, f99 := idle.Percentile(50), idle.Percentile(99)
	l50, l99 := loaded.Percentile(50), loaded.Percentile(99)
	ratio := p99.Seconds() / l99.Seconds()
	ratioIdle := p99.Seconds() / f99.Seconds()
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(visible.Percentile(50)), "vis-p50-ms")
	b.ReportMetric(ms(visible.Percentile(99)), "vis-p99-ms")
	stages := []struct {
		name string
		l    latencies
	}{{"append", handled}, {"read", read}, {"apply", applied}, {"notify", notified}}
	stageText := ""
	for _, st := range stages {
		b.ReportMetric(ms(st.l.Percentile(50)), st.name+"-p50-ms")
		b.ReportMetric(ms(st.l.Percentile(99)), st.name+"-p99-ms")
		stageText += fmt.Sprintf("; %s p50 %.2f, p99 %.2f ms", st.name, ms(st.l.Percentile(50)), ms(st.l.Percentile(99)))
	}
	b.ReportMetric(achieved, "achieved-cmd/s")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(float64(notVisible), "late")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(ms(f50), "floor-p50-ms")
	b.ReportMetric(ms(f99), "floor-p99-ms")
	b.ReportMetric(ms(l50), "floor-load-p50-ms")
	b.ReportMetric(ms(l99), "floor-load-p99-ms")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(ratioIdle, "ratio-idle")

	if acq := after.AcquireCount() - before.AcquireCount(); acq > 0 {
		b.Logf("pool (%d connections): %d acquires during the run, %.0f%% had to wait, %.2f ms average wait",
			after.MaxConns(), acq, 100*float64(after.EmptyAcquireCount()-before.EmptyAcquireCount())/float64(acq),
			ms((after.AcquireDuration()-before.AcquireDuration())/time.Duration(acq)))
	}
	goal := "p99 is judged at 1000/s and 2000/s"
	if g, ok := visibleGoals[rate]; ok {
		goal = fmt.Sprintf("p99 < %d ms: %s", g.Milliseconds(), verdict(p99 < g))
	}
	summary(b, "%d commands/s offered, %.0f/s achieved (max %d in flight): append-to-visible p50 %.2f ms, p99 %.2f ms (stages: due to handled = append, handled to read by the user list's subscription = read, read to committed = apply, committed to the waiter's reader woken = notify%s); missing %d (goal 0: %s), late %d, failed %d; %s; floor NOTIFY round trip under the same load p50 %.2f ms, p99 %.2f ms, idle p50 %.3f ms, p99 %.3f ms; p99/floor p99 = %.1f under load (goal ≤ %.0f: %s), %.0f idle (%s)",
		rate, achieved, maxInFlight, ms(p50), ms(p99), stageText,
		missing, verdict(missing == 0), notVisible, failed, goal, ms(l50), ms(l99), ms(f50), ms(f99),
		ratio, visibleGoalFloorMult, verdict(ratio <= visibleGoalFloorMult), ratioIdle, verdict(ratioIdle <= visibleGoalFloorMult))
}

// deliveries records when each checkpoint was reached, in order.
type deliveries struct {
	mu  sync.Mutex
	cps []domain.Position
	ts  []time.Time
}

func (d *deliveries) record(cp domain.Position) {
	d.mu.Lock()
	d.cps, d.ts = append(d.cps, cp), append(d.ts, time.Now())
	d.mu.Unlock()
}

// tracedSource records when its subscriber receives each batch of events.
type tracedSource struct {
	projections.Source
	d *deliveries
}

func (t tracedSource) Subscribe(ctx context.Context, from domain.Position, size int, h func(context.Context, projections.Batch) error) error {
	return t.Source.Subscribe(ctx, from, size, func(ctx context.Context, b projections.Batch) error {
		if len(b.Events) > 0 {
			t.d.record(b.Checkpoint)
		}
		return h(ctx, b)
	})
}

// at answers when the event at pos was delivered (zero if not yet).
func (d *deliveries) at(pos domain.Position) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := sort.Search(len(d.cps), func(i int) bool { return !d.cps[i].Less(pos) })
	if i == len(d.cps) {
		return time.Time{}
	}
	return d.ts[i]
}

// notifyProbe times LISTEN/NOTIFY round trips: one connection sends
// pg_notify (in its own transaction, as the store's post-commit
// notification is), another listens.
type notifyProbe struct {
	send *pgx.Conn
	got  chan string
	n    int
}

func newNotifyProbe(b *testing.B, ctx context.Context, url string) *notifyProbe {
	listen, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	send, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := listen.Exec(ctx, "LISTEN "+floorChannel); err != nil {
		b.Fatal(err)
	}
	p := &notifyProbe{send: send, got: make(chan string, 64)}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := listen.WaitForNotification(lctx)
			if err != nil {
				return
			}
			p.got <- n.Payload
		}
	}()
	b.Cleanup(func() {
		stop()
		<-done
		_ = listen.Close(context.Background())
		_ = send.Close(context.Background())
	})
	return p
}

// roundTrip answers the time from sending a notification to receiving it.
func (p *notifyProbe) roundTrip(b *testing.B, ctx context.Context) time.Duration {
	p.n++
	payload := strconv.Itoa(p.n)
	start := time.Now()
	if _, err := p.send.Exec(ctx, "SELECT pg_notify($1, $2)", floorChannel, payload); err != nil {
		b.Error(err)
		return 0
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case s := <-p.got:
			if s == payload {
				return time.Since(start)
			}
		case <-timeout.C:
			b.Error(errors.New("notification not received within 5 s"))
			return 0
		}
	}
}
