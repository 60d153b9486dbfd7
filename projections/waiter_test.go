package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// startWaiter starts a Waiter on pool until the end of the test. Unless the
// options say otherwise, it never re-reads checkpoints on its own, so only
// notifications can wake it.
func startWaiter(t *testing.T, pool *pgxpool.Pool, opts ...projections.WaiterOption) *projections.Waiter {
	t.Helper()
	opts = append([]projections.WaiterOption{
		projections.WithWaiterLogger(testLogger(t)),
		projections.WithFallbackInterval(time.Hour),
	}, opts...)
	w := projections.NewWaiter(pool, nil, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		w.Wait()
	})
	return w
}

// waitFor runs WaitFor in the background and returns where its answer comes.
func waitFor(w *projections.Waiter, pos domain.Position, names ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		done <- w.WaitFor(ctx, pos, names...)
	}()
	return done
}

func TestWaitForReturnsOnceRunnerPassesPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appender
	w := startWaiter(t, e.pool)
	pos := e.appendEvents(t, &a, 12)

	done := waitFor(w, pos, "test")
	select {
	case err := <-done:
		t.Fatalf("WaitFor before any runner ran: got %v, want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	start(t, projections.NewRunner(e.pool, newTestProjection("A"), e.src, fastOptions(t)))
	if err := receive(t, done, "WaitFor after the runner started"); err != nil {
		t.Fatalf("WaitFor: got %v, want nil", err)
	}
	if got := e.checkpoint(t, "test"); got.Less(pos) {
		t.Errorf("checkpoint when WaitFor returned: got %s, want at least %s", got, pos)
	}
	if got, ok := w.Checkpoint("test"); !ok || got.Less(pos) {
		t.Errorf("Checkpoint(test): got %s, %v, want at least %s, true", got, ok, pos)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := startWaiter(t, e.pool)
	pos := domain.Position{Commit: 1000, Prepare: 1}
	e.setCheckpoint(t, "ahead", pos)
	e.setCheckpoint(t, "behind", domain.Position{Commit: 999, Prepare: 7})

	for _, names := range [][]string{{"behind"}, {"never-ran"}, {"ahead", "behind"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := w.WaitFor(ctx, pos, names...)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), names[len(names)-1]) {
			t.Errorf("WaitFor(%s, %q): got %v, want context.DeadlineExceeded naming %s", pos, names, err, names[len(names)-1])
		}
	}
	for _, tc := range []struct {
		pos   domain.Position
		names []string
	}{
		{pos, []string{"ahead"}},
		{domain.Position{Commit: 999, Prepare: 7}, []string{"ahead", "behind"}},
		{domain.Position{}, []string{"never-ran"}},
		{pos, nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if err := w.WaitFor(ctx, tc.pos, tc.names...); err != nil {
			t.Errorf("WaitFor(%s, %q): got %v, want nil at once", tc.pos, tc.names, err)
		}
		cancel()
	}
}

func TestWaitForWaitsForEveryNamedProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := startWaiter(t, e.pool)
	pos := domain.Position{Commit: 50, Prepare: 3}
	done := waitFor(w, pos, "one", "two")

	e.setCheckpoint(t, "one", pos)
	e.setCheckpoint(t, "two", domain.Position{Commit: 50, Prepare: 2})
	select {
	case err := <-done:
		t.Fatalf("WaitFor with two behind: got %v, want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	e.setCheckpoint(t, "two", domain.Position{Commit: 51, Prepare: 1})
	if err := receive(t, done, "WaitFor after both passed"); err != nil {
		t.Fatalf("WaitFor: got %v, want nil", err)
	}
}

func TestWaitForAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appender
	other, err := pgxpool.New(context.Background(), e.url) // as another replica would
	if err != nil {
		t.Fatalf("second pool: %v", err)
	}
	t.Cleanup(other.Close)
	w1, w2 := startWaiter(t, e.pool), startWaiter(t, other)

	pos := e.appendEvents(t, &a, 5)
	done1, done2 := waitFor(w1, pos, "test"), waitFor(w2, pos, "test")
	start(t, projections.NewRunner(e.pool, newTestProjection("A"), e.src, fastOptions(t)))
	if err := receive(t, done1, "WaitFor first waiter"); err != nil {
		t.Errorf("first waiter: got %v, want nil", err)
	}
	if err := receive(t, done2, "WaitFor second waiter"); err != nil {
		t.Errorf("second waiter: got %v, want nil", err)
	}

	// A waiter that starts later reads the checkpoints at start.
	w3 := startWaiter(t, other)
	if got, ok := w3.Checkpoint("test"); !ok || got.Less(pos) {
		t.Errorf("Checkpoint(test) of a waiter started afterwards: got %s, %v, want at least %s, true", got, ok, pos)
	}
}

func TestWaiterListensAgainAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appender
	w := startWaiter(t, e.pool, projections.WithReconnectDelay(time.Second))
	start(t, projections.NewRunner(e.pool, newTestProjection("A"), e.src, fastOptions(t)))
	pos := e.appendEvents(t, &a, 3)
	if err := receive(t, waitFor(w, pos, "test"), "WaitFor before the connection loss"); err != nil {
		t.Fatalf("WaitFor: got %v, want nil", err)
	}

	if n := e.terminate(t, projections.WaiterAppName); n != 1 {
		t.Fatalf("terminated the waiter's connections: got %d, want 1", n)
	}
	e.waitSessions(t, projections.WaiterAppName, 0)
	// The runner moves on while nobody listens: the notification is lost,
	// and only the re-read after reconnecting can tell the waiter.
	pos = e.appendEvents(t, &a, 3)
	e.waitCheckpoint(t, "test", pos)
	if err := receive(t, waitFor(w, pos, "test"), "WaitFor after the connection loss"); err != nil {
		t.Fatalf("WaitFor: got %v, want nil", err)
	}
	e.waitSessions(t, projections.WaiterAppName, 1)
}

func TestWaiterFallsBackToReadingCheckpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := startWaiter(t, e.pool, projections.WithFallbackInterval(50*time.Millisecond))
	pos := domain.Position{Commit: 10, Prepare: 1}
	done := waitFor(w, pos, "quiet")
	// Moved without a notification: only the periodic re-read sees it.
	if _, err := e.pool.Exec(context.Background(),
		`INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ('quiet', 10, 1)`); err != nil {
		t.Fatalf("insert checkpoint: %v", err)
	}
	if err := receive(t, done, "WaitFor after the checkpoint moved silently"); err != nil {
		t.Fatalf("WaitFor: got %v, want nil", err)
	}
}

// setCheckpoint moves a checkpoint and notifies, as a runner would.
func (e *env) setCheckpoint(t *testing.T, name string, pos domain.Position) {
	t.Helper()
	_, err := e.pool.Exec(context.Background(), `
		INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET commit_position = $2, prepare_position = $3`,
		name, int64(pos.Commit), int64(pos.Prepare))
	if err == nil {
		_, err = e.pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, projections.NotifyChannel, name+" "+pos.String())
	}
	if err != nil {
		t.Fatalf("set checkpoint of %s to %s: %v", name, pos, err)
	}
}

// waitSessions waits until the test database has n sessions named appName.
func (e *env) waitSessions(t *testing.T, appName string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var got int
		err := e.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, appName).Scan(&got)
		if err != nil {
			t.Fatalf("count sessions %q: %v", appName, err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions %q: got %d after %s, want %d", appName, got, waitTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitForWakesEachWaiterOnceItsPositionIsPassed has many reads wait at
// different positions on one or two projections while their checkpoints
// move a step at a time: each returns once, and only once, every named
// projection has passed its position. A move wakes only the waits it
// satisfies, so a wait it forgets never returns.
func TestWaitForWakesEachWaiterOnceItsPositionIsPassed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := startWaiter(t, e.pool)
	type result struct {
		i   int
		err error
		cps map[string]domain.Position // when WaitFor returned
	}
	const waits, steps, pause = 200, 40, 20
	nameSets := [][]string{{"a"}, {"b"}, {"a", "b"}, {"b", "a"}}
	// Each group of four waits, one per name set, shares a position.
	pos := func(i int) domain.Position {
		return domain.Position{Commit: uint64(1 + (i/4)%steps), Prepare: uint64(1 + (i/4/steps)%2)}
	}
	results := make(chan result, waits)
	for i := range waits {
		names := nameSets[i%len(nameSets)]
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := w.WaitFor(ctx, pos(i), names...)
			cps := map[string]domain.Position{}
			for _, n := range names {
				cps[n], _ = w.Checkpoint(n)
			}
			results <- result{i, err, cps}
		}()
	}
	returned := 0
	check := func(r result) {
		returned++
		if r.err != nil {
			t.Errorf("wait %d at %s: %v", r.i, pos(r.i), r.err)
		}
		for n, cp := range r.cps {
			if cp.Less(pos(r.i)) {
				t.Errorf("wait %d at %s returned with %s at %s", r.i, pos(r.i), n, cp)
			}
		}
	}
	for c := 1; c <= steps; c++ {
		// b trails a: waits on both are released by b's move.
		e.setCheckpoint(t, "a", domain.Position{Commit: uint64(c), Prepare: 2})
		e.setCheckpoint(t, "b", domain.Position{Commit: uint64(c), Prepare: 1})
		if c == pause {
			// Let every wakeup due arrive, then look: none beyond c may
			// have returned.
			time.Sleep(200 * time.Millisecond)
			for len(results) > 0 {
				check(<-results)
			}
			due := 0
			for i := range waits {
				reached := true
				for _, n := range nameSets[i%len(nameSets)] {
					cp := domain.Position{Commit: uint64(c), Prepare: 2}
					if n == "b" {
						cp.Prepare = 1
					}
					reached = reached && !cp.Less(pos(i))
				}
				if reached {
					due++
				}
			}
			if returned != due {
				t.Errorf("at step %d: %d waits returned, want the %d whose positions were passed", c, returned, due)
			}
		}
	}
	e.setCheckpoint(t, "b", domain.Position{Commit: steps + 1, Prepare: 1})
	for returned < waits {
		select {
		case r := <-results:
			check(r)
		case <-time.After(waitTimeout + 5*time.Second):
			t.Fatalf("%d of %d waits returned; the rest were never woken", returned, waits)
		}
	}
}
