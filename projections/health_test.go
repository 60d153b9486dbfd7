package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/usersd/usersd/projections"
)

// TestRunnerHealthNeedsARoundTripSinceTheLastFailure: a runner is healthy
// once it has followed the source, unhealthy as soon as its lock's
// connection is gone (found when Health asks, not at the next event), and
// healthy again only after it has taken the lock anew and followed again.
// A runner standing by for another is healthy.
func TestRunnerHealthNeedsARoundTripSinceTheLastFailure(t *testing.T) {
	t.Parallel()
	e, a := newEnvWith(t, 3)
	ctx := context.Background()
	opts := fastOptions(t)
	opts.ConnCheck = time.Hour // only Health looks at the idle connection
	r := projections.NewRunner(e.pool, newTestProjection("first"), e.src, opts)
	if err := r.Health(ctx); err == nil {
		t.Error("Health before Run: got nil, want an error")
	}
	start(t, r)
	waitHealthy(t, r)

	// A second runner stands by, and that is working.
	standby := projections.NewRunner(e.pool, newTestProjection("second"), e.src, opts)
	start(t, standby)
	waitHealthy(t, standby)

	// The lock's connection dies while the runner is idle.
	pid := e.backendOf(t, projections.AppName("projection", "test"), true)
	e.terminatePID(t, pid)
	if err := r.Health(ctx); err == nil {
		t.Fatal("Health with the lock's connection gone: got nil, want an error")
	}
	waitHealthy(t, r)
	if got := e.backendOf(t, projections.AppName("projection", "test"), true); got == pid {
		t.Errorf("healthy again on the dead connection %d", pid)
	}
	e.appendEvents(t, a, 2)
	e.wantCaughtUp(t)
}

// TestWaiterHealthFollowsItsListener: the waiter is unhealthy while its
// listening connection is lost, and healthy again once it listens anew.
func TestWaiterHealthFollowsItsListener(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := projections.NewWaiter(e.pool, nil, projections.WithReconnectDelay(50*time.Millisecond), projections.WithWaiterLogger(testLogger(t)))
	if w.Health() == nil {
		t.Error("Health before Start: got nil, want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); w.Wait() }()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Health(); err != nil {
		t.Fatalf("Health after Start: %v", err)
	}
	pid := e.backendOf(t, projections.WaiterAppName, false)
	e.terminatePID(t, pid)
	deadline := time.Now().Add(waitTimeout)
	for w.Health() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Health stayed nil with the listener gone")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for w.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Health never came back: %v", w.Health())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	w.Wait()
	if w.Health() == nil {
		t.Error("Health after the stop: got nil, want an error")
	}
}

func waitHealthy(t *testing.T, r *projections.Runner) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := r.Health(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner never became healthy: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendOf answers the pid of the one session named appName that holds an
// advisory lock, or of the one session so named (lock false).
func (e *env) backendOf(t *testing.T, appName string, lock bool) int {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var pids []int
		rows, err := e.pool.Query(context.Background(), `
			SELECT pid FROM pg_stat_activity a WHERE datname = current_database() AND application_name = $1
			AND (NOT $2 OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted))`, appName, lock)
		if err == nil {
			for rows.Next() {
				var p int
				_ = rows.Scan(&p)
				pids = append(pids, p)
			}
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions named %q: %v, want one", appName, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminatePID ends a session and waits until it is gone.
func (e *env) terminatePID(t *testing.T, pid int) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d still there", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
