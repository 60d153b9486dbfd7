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

func answer(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout + 5*time.Second):
		t.Fatalf("%s: WaitFor did not return", what)
		return nil
	}
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
	if err := answer(t, done, "after the runner started"); err != nil {
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
	if err := answer(t, done, "after both passed"); err != nil {
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
	if err := answer(t, done1, "first waiter"); err != nil {
		t.Errorf("first waiter: got %v, want nil", err)
	}
	if err := answer(t, done2, "second waiter"); err != nil {
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
	if err := answer(t, waitFor(w, pos, "test"), "before the connection loss"); err != nil {
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
	if err := answer(t, waitFor(w, pos, "test"), "after the connection loss"); err != nil {
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
	if err := answer(t, done, "after the checkpoint moved silently"); err != nil {
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
