// Package embedded runs a private PostgreSQL cluster: the embedded
// default's database when no server answers at the default address. It
// creates the cluster with initdb on first use (superuser postgres, trust
// authentication, UTF-8) and starts it with pg_ctl, listening on a Unix
// socket inside its own directory only, so it can clash with no other
// server and nothing on the network reaches it. Several processes may share
// one cluster: the one that started it stops it, once no other uses it.
package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// clusterPort names the socket file (.s.PGSQL.<port>); nothing listens
	// on TCP.
	clusterPort = 5432
	// maxSocketPath leaves room under the 107 bytes a Unix socket path
	// may have.
	maxSocketPath = 100
)

// Cluster is a private PostgreSQL cluster: its data directory, its socket
// directory and the binaries that run it.
type Cluster struct {
	log     *slog.Logger
	bin     string // directory of initdb and pg_ctl
	root    string // holds data/, run/ and postgres.log
	data    string
	socket  string
	owner   *user.User // the OS user the server runs as; nil: ourselves
	started bool       // by us, so we stop it
	setting string     // what moves root, for messages
}

// URL is the connection URL of database name on the cluster, as the
// superuser postgres.
func (c *Cluster) URL(name string) string {
	return "postgres://postgres@/" + url.PathEscape(name) + "?host=" + url.QueryEscape(c.socket) + "&port=" + strconv.Itoa(clusterPort) + "&sslmode=disable"
}

// Options configure Start.
type Options struct {
	// Logger receives what the cluster does (created, started, reused,
	// stopped); nil discards it.
	Logger *slog.Logger
	// DirSetting names what moves root, for messages (e.g. an environment
	// variable); empty: "another directory".
	DirSetting string
}

// Start starts the cluster under root, creating it on first use. A cluster
// that is already running (another process started it) is reused and left
// running by Stop.
func Start(ctx context.Context, root string, o Options) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	setting := o.DirSetting
	if setting == "" {
		setting = "another directory"
	}
	c := &Cluster{log: log, setting: setting, bin: bin, root: root, data: filepath.Join(root, "data"), socket: filepath.Join(root, "run")}
	if len(c.socket)+len("/.s.PGSQL.5432") > maxSocketPath {
		// Too deep for a socket path: use a directory named after the
		// data directory, so every start finds the same one.
		sum := sha256.Sum256([]byte(c.data))
		c.socket = filepath.Join(os.TempDir(), "usersd-pg-"+hex.EncodeToString(sum[:6]))
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if c.owner, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, the cluster must run as the postgres user, which does not exist: %w", err)
		}
		// The directory above root (USERSD_DATA_DIR) stays ours; made
		// here, it is made enterable, so that the owner reaches root.
		if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
			return nil, err
		}
		if err := reachable(root, c.owner, setting); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{root, c.socket} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// The socket directory is the only guard of a trust-authenticated
	// server (PostgreSQL makes the socket itself world-writable), and the
	// fallback one in the temporary directory has a name anyone can work
	// out and make first: refuse one that is not ours alone.
	if err := c.privateDir(c.socket); err != nil {
		return nil, err
	}
	// Two usersd processes starting at once must not both run initdb (the
	// loser would remove the winner's half-made cluster) or pg_ctl start.
	unlock, err := lockFile(filepath.Join(root, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.chown(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.data, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if c.run(ctx, "pg_ctl", "status", "-D", c.data) == nil {
		log.Info("reusing the running private PostgreSQL cluster", "dir", c.data)
		return c, nil
	}
	log.Info("starting the private PostgreSQL cluster", "dir", c.data, "log", filepath.Join(root, "postgres.log"))
	if err := c.run(ctx, "pg_ctl", "start", "-D", c.data, "-l", filepath.Join(root, "postgres.log"), "-w", "-t", "60",
		"-o", "-c listen_addresses='' -c port="+strconv.Itoa(clusterPort)+" -c unix_socket_directories='"+c.socket+"'"); err != nil {
		return nil, fmt.Errorf("pg_ctl start (see %s): %w", filepath.Join(root, "postgres.log"), err)
	}
	c.started = true
	return c, nil
}

// initdb creates the cluster: superuser postgres, trust authentication
// (only the socket in a private directory reaches it), UTF-8.
func (c *Cluster) initdb(ctx context.Context) error {
	c.log.Info("creating a private PostgreSQL cluster", "dir", c.data)
	if err := c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		_ = os.RemoveAll(c.data) // a half-made cluster would never start
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// Stop stops the cluster if Start started it, unless other clients use it.
func (c *Cluster) Stop() {
	if !c.started {
		return
	}
	c.started = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Another usersd that found the cluster running uses it too: leave it
	// to them rather than cut their connections. A connection closed a
	// moment ago (this process's own) may still be listed while its server
	// process exits: look again for up to a second before believing it.
	n, err := c.otherClients(ctx)
	for i := 0; err == nil && n > 0 && i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		n, err = c.otherClients(ctx)
	}
	if err == nil && n > 0 {
		c.log.Info("leaving the private PostgreSQL cluster running: other clients use it", "dir", c.data, "clients", n)
		return
	}
	if err := c.run(ctx, "pg_ctl", "stop", "-D", c.data, "-m", "fast", "-w"); err != nil {
		c.log.Warn("cannot stop the private PostgreSQL cluster", "dir", c.data, "err", err)
		return
	}
	c.log.Info("stopped the private PostgreSQL cluster", "dir", c.data)
}

// otherClients counts the client connections to the cluster but this one.
func (c *Cluster) otherClients(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n)
	return n, err
}

// run runs one of the cluster's programs as its owner, in a process group
// of its own: a Ctrl-C in the terminal reaches usersd, which stops the
// server after its own shutdown, rather than the server first.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.owner != nil {
		uid, _ := strconv.ParseUint(c.owner.Uid, 10, 32)
		gid, _ := strconv.ParseUint(c.owner.Gid, 10, 32)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(os.Environ(), "HOME="+c.owner.HomeDir, "USER=postgres", "LOGNAME=postgres")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 0 {
			return fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(lastLines(string(out), 5)))
		}
		return fmt.Errorf("%s: %w", prog, err)
	}
	return nil
}

// chown gives the cluster's directories to its owner.
func (c *Cluster) chown() error {
	if c.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	for _, top := range []string{c.root, c.socket} {
		err := filepath.WalkDir(top, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("give %s to the postgres user: %w", top, err)
		}
	}
	// Not the directory above root: that is USERSD_DATA_DIR, which the
	// operator named and may be any directory. A later start recreates
	// root as ourselves and gives it to the owner again.
	return nil
}

// privateDir refuses a directory that is a link, is not a directory, or
// that someone other than us or the cluster's owner owns or may enter.
func (c *Cluster) privateDir(d string) error {
	info, err := os.Lstat(d)
	if err != nil {
		return err
	}
	st, _ := info.Sys().(*syscall.Stat_t)
	ours := st != nil && (int(st.Uid) == os.Geteuid() || (c.owner != nil && strconv.Itoa(int(st.Uid)) == c.owner.Uid))
	if !info.IsDir() || info.Mode()&fs.ModeSymlink != 0 || !ours || info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is not a private directory of ours (mode %s): it would let others reach the cluster's socket; remove it, or set %s",
			d, info.Mode(), c.setting)
	}
	return nil
}

// lockFile takes an exclusive lock on path, waiting for another holder.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// reachable checks that owner may traverse every directory above dir, so
// that the server can open its files: a project under /root would not do.
func reachable(dir string, owner *user.User, setting string) error {
	uid, _ := strconv.Atoi(owner.Uid)
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err == nil {
			st, _ := info.Sys().(*syscall.Stat_t)
			ownedBy := st != nil && int(st.Uid) == uid
			if (ownedBy && info.Mode().Perm()&0o100 == 0) || (!ownedBy && info.Mode().Perm()&0o001 == 0) {
				return fmt.Errorf("the postgres user cannot enter %s (mode %s), so it cannot run a cluster below it: "+
					"set %s to a directory it can reach", p, info.Mode().Perm(), setting)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// FindBin finds initdb and pg_ctl: Debian keeps them in
// /usr/lib/postgresql/<version>/bin (the newest wins), elsewhere they are on
// PATH.
func FindBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && isExecutable(filepath.Join(filepath.Dir(p), "pg_ctl")) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH: install them (Debian: apt-get install postgresql)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
