package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/projections/projectionstest"
)

// BenchmarkAppend compares Store.Append of one event per call with, in the
// same run on the same database:
//
//   - raw: the floor it cannot beat, an autocommitted single-row INSERT of
//     the same row into a plain table with only a bigserial primary key;
//   - mdb1 and mdb16: Message DB's write_message (its SQL, installed from
//     the npm package @eventide/message-db, see installMessageDB) with every
//     stream in one category, and spread over 16 categories. Message DB
//     serialises the writers of a category on an advisory lock.
//
// Each writer count runs the sides interleaved in chunks, so that drift (a
// checkpoint, a growing table, a noisy neighbour) hits every side alike, and
// reports each side's events/s and p50 and p99 latency of one append, the
// ratios store/raw and store/mdb, and the store's p50 over raw's. Run with
//
//	go test -run '^$' -bench Append -benchtime 3s ./adapters/eventstore/postgres/
//
// Without npm (or without network for its first install) the Message DB
// sides are skipped with a message, and the rest still runs.
var writerCounts = []int{1, 4, 16, 64}

// appendChunk is how many appends a side makes before the next side's turn.
const appendChunk = 1000

func BenchmarkAppend(b *testing.B) {
	for _, writers := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			env := newBenchEnv(b, writers)
			b.Run("interleaved", func(b *testing.B) {
				sides := env.sides()
				b.ResetTimer()
				for done := 0; done < b.N; {
					n := min(b.N-done, appendChunk)
					for _, s := range sides {
						s.add(env.parallel(b, n, s.op))
					}
					done += n
				}
				b.StopTimer()
				store := sides[0]
				for _, s := range sides {
					b.ReportMetric(s.rate(), s.name+"-events/s")
					b.ReportMetric(us(s.lat.Percentile(50)), s.name+"-p50-us")
					b.ReportMetric(us(s.lat.Percentile(99)), s.name+"-p99-us")
					if s != store {
						b.ReportMetric(store.rate()/s.rate(), "ratio-"+s.name)
					}
					if s.name == "raw" { // the lone writer's goal bounds its latency too
						b.ReportMetric(float64(store.lat.Percentile(50))/float64(s.lat.Percentile(50)), "p50-ratio-raw")
					}
				}
				if env.mdbSkipped != "" {
					b.Logf("Message DB sides skipped: %s", env.mdbSkipped)
				}
			})
		})
	}
}

type benchEnv struct {
	writers int
	pool    *pgxpool.Pool
	store   *postgres.Store
	runs    atomic.Int64 // makes stream names unique per run
	data    []byte
	meta    []byte
	// mdbSkipped says why the Message DB sides do not run, if they do not.
	mdbSkipped string
}

func newBenchEnv(b *testing.B, writers int) *benchEnv {
	admin, url := pgtest.New(b)
	ctx := context.Background()
	mdbSkipped := ""
	if err := installMessageDB(ctx, admin); err != nil {
		mdbSkipped = err.Error()
		b.Logf("Message DB sides skipped: %v", err)
	}
	pool := projectionstest.Pool(b, url, int32(writers+2)) // every writer has a connection; one for the notifier
	projectionstest.CreateFloorTable(b, pool, "raw_events")
	store := postgres.New(pool)
	b.Cleanup(store.Close)
	env := &benchEnv{
		writers: writers,
		pool:    pool,
		store:   store,
		// 228 bytes of data and 74 of metadata: about the size of a
		// typical usersd event, a little over the 250 bytes.
		data: []byte(`{"workspace_id": "` + uuid.NewString() + `", "user_id": "` + uuid.NewString() +
			`", "email": "someone.with.a.long.name@example.com", "role": "Member", "invited_by": "` + uuid.NewString() + `"}`),
		meta:       []byte(`{"actor": "` + uuid.NewString() + `", "correlation_id": "c-1"}`),
		mdbSkipped: mdbSkipped,
	}
	// Warm up every path: connections, prepared statements, functions.
	for _, s := range env.sides() {
		env.parallel(b, 4*writers, s.op)
	}
	return env
}

// side is one contender of BenchmarkAppend and what it measured.
type side struct {
	name    string
	op      func(w int) func(i int) error
	elapsed time.Duration
	events  int
	lat     latencies
}

func (s *side) add(d time.Duration, lat latencies) {
	s.elapsed += d
	s.events += len(lat)
	s.lat = append(s.lat, lat...)
}

func (s *side) rate() float64 { return float64(s.events) / s.elapsed.Seconds() }

// sides lists the contenders, the store first.
func (env *benchEnv) sides() []*side {
	s := []*side{{name: "store", op: env.storeOp}, {name: "raw", op: env.rawOp}}
	if env.mdbSkipped == "" {
		s = append(s, &side{name: "mdb1", op: env.mdbOp(1)}, &side{name: "mdb16", op: env.mdbOp(16)})
	}
	return s
}

// newEventID makes event ids as usersd does: UUIDv7, time-ordered, so the
// unique index on event ids grows at its right edge.
func newEventID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// streamsPerWriter makes most appends go to an existing stream with an exact
// expected revision, as command handlers do, and some create a stream.
const streamsPerWriter = 10

// storeOp appends one event per call.
func (env *benchEnv) storeOp(w int) func(i int) error {
	run := env.runs.Add(1)
	next := make([]uint64, streamsPerWriter)
	return func(i int) error {
		k := i % streamsPerWriter
		var expected eventstore.ExpectedRevision = eventstore.NoStream{}
		if next[k] > 0 {
			expected = eventstore.Revision(next[k] - 1)
		}
		stream := fmt.Sprintf("bench-%d-%d-%d", run, w, k)
		_, err := env.store.Append(context.Background(), stream, expected,
			eventstore.EventData{ID: newEventID(), Type: "UserInvited.v1", Data: env.data, Metadata: env.meta})
		next[k]++
		return err
	}
}

// rawOp inserts a row like the store's, one autocommitted INSERT each.
func (env *benchEnv) rawOp(w int) func(i int) error {
	run := env.runs.Add(1)
	next := make([]int64, streamsPerWriter)
	return func(i int) error {
		k := i % streamsPerWriter
		stream := fmt.Sprintf("bench-%d-%d-%d", run, w, k)
		_, err := env.pool.Exec(context.Background(),
			`INSERT INTO raw_events (event_id, stream_id, revision, type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6)`,
			[16]byte(newEventID()), stream, next[k], "UserInvited.v1", env.data, env.meta)
		next[k]++
		return err
	}
}

// mdbOp writes one message per call with Message DB's write_message and an
// expected version, as the store's appends expect a revision. Streams are
// spread over the given number of categories (the part of a Message DB
// stream name before its first dash).
func (env *benchEnv) mdbOp(categories int) func(w int) func(i int) error {
	return func(w int) func(i int) error {
		run := env.runs.Add(1)
		next := make([]int64, streamsPerWriter)
		return func(i int) error {
			k := i % streamsPerWriter
			stream := fmt.Sprintf("bench%d-r%dw%dk%d", (w*streamsPerWriter+k)%categories, run, w, k)
			_, err := env.pool.Exec(context.Background(),
				`SELECT message_store.write_message($1, $2, $3, $4, $5, $6)`,
				newEventID().String(), stream, "UserInvited.v1", env.data, env.meta, next[k]-1)
			next[k]++
			return err
		}
	}
}

// parallel runs n operations spread over env.writers goroutines, each with
// its own state from newWriter, and returns the elapsed time and each
// operation's latency.
func (env *benchEnv) parallel(b *testing.B, n int, newWriter func(w int) func(i int) error) (time.Duration, latencies) {
	var taken atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	lats := make([]latencies, env.writers)
	start := time.Now()
	for w := range env.writers {
		op := newWriter(w)
		wg.Go(func() {
			for i := 0; ; i++ {
				if taken.Add(1) > int64(n) {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatalf("writer: %v", *err)
	}
	return d, slices.Concat(lats...)
}

type latencies = projectionstest.Latencies

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Message DB ships as SQL files and bash scripts that run them with psql in
// a fixed order (database/install.sh). installMessageDB installs the npm
// package into .cache/message-db at the module's root once, reads that order
// from the scripts, and runs the files in the benchmark's fresh database.
const (
	mdbPackage = "@eventide/message-db"
	mdbCache   = ".cache/message-db"
)

var (
	mdbOnce sync.Once
	mdbDir  string
	mdbErr  error
)

// installMessageDB loads Message DB into the database of pool and makes its
// schema part of the database's search path (its functions call each other
// unqualified), for connections opened afterwards.
func installMessageDB(ctx context.Context, pool *pgxpool.Pool) error {
	mdbOnce.Do(func() { mdbDir, mdbErr = fetchMessageDB(ctx) })
	if mdbErr != nil {
		return mdbErr
	}
	files, err := mdbInstallOrder(mdbDir, "install.sh")
	if err != nil {
		return fmt.Errorf("read Message DB's install scripts: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET search_path = message_store, public"); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(ctx, "RESET search_path") }()
	for _, f := range files {
		sql, err := os.ReadFile(filepath.Join(mdbDir, f))
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("Message DB's %s: %w", f, err)
		}
	}
	_, err = conn.Exec(ctx, `DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, message_store', current_database());
	END $$`)
	return err
}

// fetchMessageDB answers the directory of Message DB's database scripts,
// installing the npm package first if the cache does not hold it.
func fetchMessageDB(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cache := filepath.Join(root, mdbCache)
	dir := filepath.Join(cache, "node_modules", filepath.FromSlash(mdbPackage), "database")
	if _, err := os.Stat(filepath.Join(dir, "install.sh")); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed, so %s cannot be fetched: %w", mdbPackage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", cache, mdbPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install %s: %w\n%s", mdbPackage, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "install.sh")); err != nil {
		return "", fmt.Errorf("npm installed %s without database/install.sh: %w", mdbPackage, err)
	}
	return dir, nil
}

// moduleRoot answers the directory holding go.mod, from the package's.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

var (
	mdbFunctionStart = regexp.MustCompile(`^function ([\w-]+) \{`)
	mdbSQLFile       = regexp.MustCompile(`\$base/([\w./-]+\.sql)`)
	mdbSource        = regexp.MustCompile(`^source \$base/([\w.-]+\.sh)`)
)

// mdbInstallOrder reads one of Message DB's install scripts and answers the
// SQL files it runs, in order: each script defines bash functions that run
// files with psql, then calls them and sources the other scripts.
func mdbInstallOrder(dir, script string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, script))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	functions := make(map[string][]string)
	var files []string
	var in string // the function being defined
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch m := mdbFunctionStart.FindStringSubmatch(line); {
		case m != nil:
			in = m[1]
			functions[in] = []string{}
		case in != "" && line == "}":
			in = ""
		case in != "":
			if m := mdbSQLFile.FindStringSubmatch(line); m != nil {
				functions[in] = append(functions[in], m[1])
			}
		default:
			if m := mdbSource.FindStringSubmatch(line); m != nil {
				more, err := mdbInstallOrder(dir, m[1])
				if err != nil {
					return nil, err
				}
				files = append(files, more...)
			} else if fs, ok := functions[line]; ok {
				files = append(files, fs...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s runs no SQL file that we could find", script)
	}
	return files, nil
}
