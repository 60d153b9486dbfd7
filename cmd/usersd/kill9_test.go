package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/internal/testenv"
	"github.com/usersd/usersd/internal/testnet"
)

// TestKill9UnderLoadCopies measures the crash window of invitation e-mails
// (docs/email.md): it builds the real binary, mails invitations under load
// to an in-process SMTP server, kills the binary with SIGKILL while it
// mails, starts it again, waits until every invitation it answered has its
// e-mail, and counts the addresses that got a copy. It repeats that
// USERSD_KILL9_RUNS times (within USERSD_KILL9_BUDGET, default 10m) and
// logs the figure (USERSD_KILL9_BIN runs another build instead, to compare); it fails only if an e-mail is lost or a run gets more
// copies than the window allows (one per partition). Without
// USERSD_KILL9_RUNS it is skipped: it takes minutes.
//
//	USERSD_KILL9_RUNS=20 go test -run TestKill9UnderLoadCopies -v ./cmd/usersd/
func TestKill9UnderLoadCopies(t *testing.T) {
	if os.Getenv("USERSD_KILL9_RUNS") == "" {
		t.Skip("set USERSD_KILL9_RUNS to measure the crash window (it takes minutes)")
	}
	runs := testenv.PositiveInt(t, "USERSD_KILL9_RUNS", 0)
	budget := 10 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("USERSD_KILL9_BUDGET")); err == nil && d > 0 {
		budget = d
	}
	deadline := time.Now().Add(budget)

	dir := t.TempDir()
	bin := os.Getenv("USERSD_KILL9_BIN") // another build, to compare
	if bin == "" {
		bin = buildUsersd(t, dir)
	}
	_, dbURL := pgtest.New(t)
	srv := smtptest.Start(t, smtptest.Options{})
	env, base := binaryEnv(t, dbURL, "SMTP_URL=smtp://"+srv.Addr)

	start := func(run int) *exec.Cmd { return startUsersd(t, bin, env, dir, base, run) }

	cmd := start(0)
	var withCopy, copies, mailed, done int
	for run := 1; run <= runs && time.Now().Before(deadline); run++ {
		// Load: clients invite batches of new addresses until the kill.
		var answered sync.Map // address -> invited and answered 200
		var sent atomic.Int64
		stop := make(chan struct{})
		var clients sync.WaitGroup
		before := len(srv.Messages())
		for c := range 4 {
			clients.Go(func() {
				ws, owner := "", ""
				n := 0
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if ws == "" || n >= 400 { // a workspace's invitation limit is 500
						ws, owner = kill9Workspace(base, fmt.Sprintf("r%d-c%d-%d", run, c, i))
						n = 0
						if ws == "" {
							time.Sleep(20 * time.Millisecond)
							continue
						}
					}
					// No further ahead of the mailer than a few seconds'
					// work: the load is for the kill, not a backlog.
					for sent.Load()-int64(len(srv.Messages())-before) > 1000 {
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
					}
					var batch []string
					for k := range 20 {
						batch = append(batch, fmt.Sprintf("r%d-c%d-%d-%d@example.com", run, c, i, k))
					}
					n += len(batch)
					sent.Add(int64(len(batch)))
					if kill9Invite(base, ws, owner, batch) {
						for _, a := range batch {
							answered.Store(a, true)
						}
					}
				}
			})
		}
		// Kill once the mailer is in full swing: after a random number of
		// this run's e-mails.
		want := before + 50 + rand.IntN(200)
		for len(srv.Messages()) < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_ = cmd.Process.Signal(os.Kill)
		_ = cmd.Wait()
		close(stop)
		clients.Wait()

		cmd = start(run)
		// Every answered invitation gets its e-mail.
		var want1 []string
		answered.Range(func(k, _ any) bool { want1 = append(want1, k.(string)); return true })
		// (Lost is no progress for a minute, however long the backlog.)
		lastMissing, stalled := -1, time.Now().Add(time.Minute)
		var got map[string]int
		for {
			got = map[string]int{}
			for _, m := range srv.Messages() {
				for _, to := range m.To {
					got[strings.ToLower(to)]++
				}
			}
			missing := 0
			for _, a := range want1 {
				if got[a] == 0 {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if missing != lastMissing {
				lastMissing, stalled = missing, time.Now().Add(time.Minute)
			}
			if time.Now().After(stalled) {
				t.Fatalf("run %d: %d of %d answered invitations never got their e-mail", run, missing, len(want1))
			}
			time.Sleep(100 * time.Millisecond)
		}
		prefix := fmt.Sprintf("r%d-", run)
		runCopies, runMailed := 0, 0
		for a, n := range got {
			if !strings.HasPrefix(a, prefix) {
				continue
			}
			runMailed++
			if n > 1 {
				runCopies++
			}
		}
		t.Logf("run %d: %d addresses invited, %d mailed, killed after %d e-mails of the run; %d got a copy", run, sent.Load(), runMailed, want-before, runCopies)
		if runCopies > 4 {
			t.Errorf("run %d: %d addresses got a copy; the window allows one per partition (4)", run, runCopies)
		}
		done++
		mailed += runMailed
		copies += runCopies
		if runCopies > 0 {
			withCopy++
		}
	}
	t.Logf("kill -9 under load: %d runs, %d with a copy (%.0f%%), %d copies among %d e-mails", done, withCopy, 100*float64(withCopy)/float64(max(done, 1)), copies, mailed)
}

// buildUsersd builds the binary into dir and answers its path.
func buildUsersd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "usersd")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// binaryEnv is the environment of a usersd serve binary on the database
// dbURL, listening on a free port at base, with the extra variables
// (KEY=value).
func binaryEnv(t *testing.T, dbURL string, extra ...string) (env []string, base string) {
	t.Helper()
	addr := testnet.FreeAddr(t)
	env = append(os.Environ(),
		"DATABASE_URL="+dbURL, "USERSD_JWT_SECRET="+testJWTSecret,
		"USERSD_AUDIT_SIGNING_KEY="+testAuditKey, "USERSD_KEY_ENCRYPTION_KEY="+testKEK,
		"USERSD_HTTP_ADDR="+addr, "USERSD_PUBLIC_URL=http://usersd.test", "USERSD_LOG_LEVEL=warn")
	return append(env, extra...), "http://" + addr
}

// startUsersd starts bin serve with env, logging to dir/serve-<run>.log,
// and waits until it is ready at base. The test's end kills it.
func startUsersd(t *testing.T, bin string, env []string, dir, base string, run int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("serve-%02d.log", run)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	if err := waitReady(base, 2*time.Minute, 50*time.Millisecond); err != nil {
		t.Fatalf("run %d: usersd never became ready: %v (log in %s)", run, err, logf.Name())
	}
	return cmd
}

// kill9Workspace creates a workspace; "" when the service did not answer.
func kill9Workspace(base, name string) (ws, owner string) {
	sys := systemToken()
	body := fmt.Sprintf(`{"name":%q,"owner":{"email":"owner-%s@example.org","name":"O"}}`, name, name)
	rq, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/v1/workspaces", strings.NewReader(body))
	rq.Header.Set("Authorization", "Bearer "+sys)
	rq.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(rq)
	if err != nil {
		return "", ""
	}
	defer r.Body.Close()
	var c createdWorkspace
	if r.StatusCode != 201 || json.NewDecoder(r.Body).Decode(&c) != nil {
		return "", ""
	}
	return c.WorkspaceID, userToken(c.OwnerUserID)
}

// kill9Invite invites the addresses; true when the service answered that
// it invited them all.
func kill9Invite(base, ws, owner string, addrs []string) bool {
	b, _ := json.Marshal(map[string]any{"emails": addrs, "role": "Editor"})
	rq, _ := http.NewRequest("POST", base+"/v1/workspaces/"+ws+"/invitations", strings.NewReader(string(b)))
	rq.Header.Set("Authorization", "Bearer "+owner)
	rq.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(rq)
	if err != nil {
		return false
	}
	defer r.Body.Close()
	var res struct {
		Results []struct{ Outcome string }
	}
	if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&res) != nil {
		return false
	}
	for _, x := range res.Results {
		if x.Outcome != "invited" {
			return false
		}
	}
	return len(res.Results) == len(addrs)
}
