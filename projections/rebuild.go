package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/positive"
)

const (
	defaultRebuildBatchSize = 5000
	defaultSwapLockTimeout  = 5 * time.Second
	// replayReadAhead is how many batches a replay's reader may hold ready
	// beyond the one being applied: one is enough to keep both busy.
	replayReadAhead = 1
	// swapAttempts bounds the retries of a swap that could not lock the
	// live tables in time (busy readers) or lost a deadlock to the runner.
	swapAttempts = 5
	// maxIdentifier is PostgreSQL's identifier length (NAMEDATALEN-1):
	// longer names are silently truncated, which could mix up two rebuilds.
	maxIdentifier = 63
)

// ErrRebuildRunning is returned by Rebuild when another rebuild of the same
// projection holds its lock.
var ErrRebuildRunning = errors.New("another rebuild of this projection is running")

// ErrDiverged is wrapped by the error of a Comparer whose rebuilt tables
// differ from the live ones: Rebuild then refuses to swap, unless
// RebuildOptions.AcceptDivergence accepts it.
var ErrDiverged = errors.New("the rebuilt tables differ from the live ones")

// Comparer is implemented by a projection whose rebuilt tables must agree
// with the live ones: the audit history, whose entries are evidence. A
// rebuild replays the events as they are stored today; should they have
// been rewritten underneath (or the live entries edited), swapping would
// silently replace the history the live tables hold with another. So the
// swap of such a projection locks the live tables in SHARE mode first
// (readers go on; the live runner waits), brings the rebuilt tables at
// least to the live checkpoint, and asks Compare; only then does it take
// the live tables from the readers (ACCESS EXCLUSIVE) and swap. Compare
// reads both tables whole (about a second per million audit entries on a
// small machine): the live runner waits that long, readers do not.
type Comparer interface {
	// Compare compares the tables in the schema rebuilt with those in the
	// schema live; the rebuilt ones are at the live checkpoint or beyond
	// it (the live runner may lag, or not run). It answers nil when they
	// agree, an error wrapping ErrDiverged that names the differences when
	// they do not, or another error when it could not compare.
	Compare(ctx context.Context, tx pgx.Tx, rebuilt, live string) error
}

// errStop ends a subscription on purpose.
var errStop = errors.New("stop")

// RebuildOptions tune Rebuild. The zero value is usable.
type RebuildOptions struct {
	// BatchSize caps the events applied in one transaction. Default 5000:
	// nobody reads the rebuild's tables, so big transactions cost nothing.
	BatchSize int
	// Progress, if set, is called after each batch applied outside the
	// swap (in RebuildReplay and RebuildCatchUp) with the events applied so
	// far and the position reached.
	Progress func(applied int, pos domain.Position)
	// Phase, if set, is called as the rebuild starts each of its phases,
	// in order: RebuildReplay, then RebuildIndexes and RebuildCatchUp for a
	// read model with secondary indexes (Schema.Indexes), then RebuildSwap.
	Phase func(RebuildPhase)
	// Logger receives the phases (Info) and the retries of the swap (Warn).
	// Default slog.Default().
	Logger *slog.Logger
	// LockTimeout bounds each attempt of the swap to lock the live tables,
	// so that readers queued behind it are not held up long. Default 5 s.
	LockTimeout time.Duration
	// AcceptDivergence, if set, is asked when a Comparer's rebuilt tables
	// differ from the live ones (its error wraps ErrDiverged), before the
	// swap, with the live tables locked: nil swaps anyway, an error fails
	// the rebuild with it. It is asked again only if a retried swap finds
	// other differences. Unset, a divergence fails the rebuild, and the
	// live tables stay as they are.
	AcceptDivergence func(ctx context.Context, diverged error) error
}

func (o RebuildOptions) withDefaults() RebuildOptions {
	o.BatchSize = positive.Or(o.BatchSize, defaultRebuildBatchSize)
	if o.Progress == nil {
		o.Progress = func(int, domain.Position) {}
	}
	if o.Phase == nil {
		o.Phase = func(RebuildPhase) {}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.LockTimeout = positive.Or(o.LockTimeout, defaultSwapLockTimeout)
	return o
}

// RebuildPhase is a step of a rebuild, for RebuildOptions.Phase.
type RebuildPhase string

const (
	// RebuildReplay applies the whole history to fresh tables.
	RebuildReplay RebuildPhase = "replaying the history"
	// RebuildIndexes builds the secondary indexes (Schema.Indexes) of a read
	// model on the replayed tables, and analyzes them.
	RebuildIndexes RebuildPhase = "building indexes"
	// RebuildCatchUp applies the events appended while the indexes were
	// built, so that the swap has few left to apply under its locks.
	RebuildCatchUp RebuildPhase = "catching up"
	// RebuildSwap locks the live tables and replaces them.
	RebuildSwap RebuildPhase = "swapping the tables in"
)

// RebuildResult tells what a rebuild did.
type RebuildResult struct {
	// Applied counts the events applied, AppliedInSwap those of them applied
	// inside the swap to reach the live runner's checkpoint.
	Applied, AppliedInSwap int
	// Position is the projection's checkpoint after the swap.
	Position domain.Position
	Duration time.Duration
	// IndexDuration is the part of Duration spent building the secondary
	// indexes and analyzing the tables (Schema.Indexes); zero without.
	IndexDuration time.Duration
}

// RebuildSchema is the schema where a rebuild of the named projection
// builds its tables.
func RebuildSchema(name string) string { return "rebuild_" + name }

// Rebuild builds p from the start of the history into fresh tables and swaps
// them in for the live ones. The fresh tables get their secondary indexes
// (Schema.Indexes) only once the history is in them, before the swap. The service keeps answering from
// the live tables, and the live runner keeps running, until the swap: one
// transaction that locks the live tables, brings the new ones up to the
// live checkpoint if they are behind it, replaces the live tables with them
// and sets the checkpoint. The live runner's next batch then fails its
// checkpoint fence and it follows on from the new checkpoint.
//
// Only one rebuild of a projection runs at a time; another returns
// ErrRebuildRunning. A failed rebuild leaves the live tables untouched.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, p ReadModel, src Source, opts RebuildOptions) (RebuildResult, error) {
	start := time.Now()
	rb, err := startRebuild(ctx, pool, p, src, opts.withDefaults())
	if err != nil {
		return RebuildResult{}, err
	}
	defer closeConn(rb.conn)
	res, err := rb.run(ctx)
	if err != nil {
		rb.cleanUp()
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// rebuild is one run of Rebuild.
type rebuild struct {
	conn   *pgx.Conn       // holds the rebuild lock; every write goes through it
	cfg    *pgx.ConnConfig // for the connections that build indexes beside conn
	p      ReadModel
	src    Source
	opts   RebuildOptions
	schema string
	log    *slog.Logger
	// accepted is the divergence AcceptDivergence accepted, so that a
	// retried swap that finds the same one (SameDivergence) does not ask
	// again.
	accepted error
}

// startRebuild connects and takes the projection's rebuild lock.
func startRebuild(ctx context.Context, pool *pgxpool.Pool, p ReadModel, src Source, opts RebuildOptions) (*rebuild, error) {
	schema := RebuildSchema(p.Name())
	if len(schema) > maxIdentifier {
		return nil, fmt.Errorf("rebuild %s: schema name %q is longer than %d bytes", p.Name(), schema, maxIdentifier)
	}
	conn, err := connect(ctx, pool.Config().ConnConfig, AppName("rebuild", p.Name()))
	if err != nil {
		return nil, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	ok, err := tryAdvisoryLock(ctx, conn, advisoryKey("rebuild", p.Name()))
	if err == nil && !ok {
		err = ErrRebuildRunning
	}
	if err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	return &rebuild{
		conn: conn, cfg: pool.Config().ConnConfig, p: p, src: src, opts: opts, schema: schema,
		log: opts.Logger.With("projection", p.Name()),
	}, nil
}

func (rb *rebuild) run(ctx context.Context) (RebuildResult, error) {
	schema := rb.p.Schema()
	deferred := schema.Indexes != ""
	if err := rb.createTables(ctx, schema); err != nil {
		return RebuildResult{}, err
	}
	rb.phase(RebuildReplay)
	start := time.Now()
	var fold Replay
	if r, ok := rb.p.(Replayer); ok {
		fold = r.NewReplay()
	}
	pos, applied, err := rb.replay(ctx, domain.Position{}, 0, fold)
	if err != nil {
		return RebuildResult{}, err
	}
	var indexing time.Duration
	if deferred {
		rb.phase(RebuildIndexes, "events", applied, "replay", time.Since(start).Round(time.Millisecond))
		start := time.Now()
		if err := rb.createIndexes(ctx, schema); err != nil {
			return RebuildResult{}, err
		}
		indexing = time.Since(start)
		rb.phase(RebuildCatchUp, "indexes", indexing.Round(time.Millisecond))
		if pos, applied, err = rb.replay(ctx, pos, applied, nil); err != nil {
			return RebuildResult{}, err
		}
	}
	rb.phase(RebuildSwap, "events", applied)
	final, inSwap, err := rb.swap(ctx, pos)
	if err != nil {
		return RebuildResult{}, err
	}
	return RebuildResult{Applied: applied + inSwap, AppliedInSwap: inSwap, Position: final, IndexDuration: indexing}, nil
}

// phase reports the start of a phase to the options' Phase and the log.
func (rb *rebuild) phase(ph RebuildPhase, args ...any) {
	rb.log.Info("rebuild: "+string(ph), args...)
	rb.opts.Phase(ph)
}

// createTables makes the rebuild schema afresh (a failed rebuild may have
// left one) and the read model's tables in it, without their secondary
// indexes.
func (rb *rebuild) createTables(ctx context.Context, schema Schema) error {
	quoted := pgx.Identifier{rb.schema}.Sanitize()
	return rb.inTx(ctx, func(tx pgx.Tx) error {
		for _, sql := range []string{"DROP SCHEMA IF EXISTS " + quoted + " CASCADE", "CREATE SCHEMA " + quoted} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				if isInsufficientPrivilege(err) {
					// The service's role: it owns nothing and may create
					// nothing, by design.
					return fmt.Errorf("%s: %w (a rebuild creates tables and swaps them for the live ones: run it as their owner, the role that runs the migrations)", sql, err)
				}
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
		return CreateTables(ctx, tx, rb.schema, schema, false)
	})
}

// createIndexes builds the secondary indexes on the replayed tables, then
// analyzes the tables: the planner then knows them as soon as they are
// live, and Apply's custom plans in the catch-up and the swap see their
// real size.
//
// The statements of Schema.Indexes are shared out between the rebuild's
// connection and indexWorkers-1 more, each building one index at a time in
// a transaction of its own with indexMemory to sort in: an index build is
// one server process busy on one core, and CREATE INDEX's lock (SHARE)
// lets builds on the same table run side by side. Built in turn, a read
// model's six indexes took a quarter of its rebuild.
func (rb *rebuild) createIndexes(ctx context.Context, schema Schema) error {
	stmts, err := splitStatements(schema.Indexes)
	if err != nil {
		return err
	}
	workers := min(indexWorkers, len(stmts))
	conns := []*pgx.Conn{rb.conn}
	defer func() {
		for _, c := range conns[1:] {
			closeConn(c)
		}
	}()
	for len(conns) < workers {
		c, err := connect(ctx, rb.cfg, AppName("rebuild", rb.p.Name()))
		if err != nil {
			return fmt.Errorf("connect to build indexes: %w", err)
		}
		conns = append(conns, c)
	}
	next := make(chan string, len(stmts))
	for _, st := range stmts {
		next <- st
	}
	close(next)
	// After a failure the other builds are let finish, not cancelled: pgx
	// answers a cancelled context by breaking the connection, which would
	// leave the build running on an orphaned server process and, on
	// rb.conn, lose the rebuild lock and the cleanUp that drops the schema.
	// Only the statements not yet started are given up.
	var failed atomic.Bool
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			var err error
			for st := range next {
				if failed.Load() {
					break
				}
				if err = rb.buildIndex(ctx, c, st); err != nil {
					failed.Store(true)
					break
				}
			}
			errs <- err
		}()
	}
	for range conns {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return err
	}
	if _, err := rb.conn.Exec(ctx, "ANALYZE "+qualified(rb.schema, rb.p.Tables())); err != nil {
		return fmt.Errorf("analyze the rebuilt tables: %w", err)
	}
	return nil
}

const (
	// indexWorkers is how many indexes a rebuild builds at once.
	indexWorkers = 2
	// indexMemory is each build's maintenance_work_mem: the rebuilt
	// tables are read by no one yet, and a GIN index (the user list's
	// search) builds in far fewer passes with room to gather its entries.
	// Fixed rather than taken from the server's setting (64MB by default,
	// which would lose that): at most indexWorkers × 256MB, during the
	// index phase only (a parallel build shares its budget among its
	// workers). README's rebuild paragraph says so for operators.
	indexMemory = "256MB"
)

// buildIndex runs one statement of Schema.Indexes on conn, in the rebuild's
// schema, in a transaction of its own.
func (rb *rebuild) buildIndex(ctx context.Context, conn *pgx.Conn, stmt string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '"+indexMemory+"'"); err != nil {
			return err
		}
		if err := CreateIndexes(ctx, tx, rb.schema, Schema{Indexes: stmt}); err != nil {
			return err
		}
		return nil
	})
}

// splitStatements cuts SQL into its statements at the semicolons outside
// quotes and comments, dropping the comments and the empty ones. It refuses
// block comments and dollar quoting, which it does not parse: a semicolon
// in either would cut a statement in two, and the pieces would run apart.
func splitStatements(sql string) ([]string, error) {
	var out []string
	var cur strings.Builder
	flush := func() {
		if st := strings.TrimSpace(cur.String()); st != "" {
			out = append(out, st)
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				j++
			}
			cur.WriteString(sql[i:min(j+1, len(sql))])
			i = j
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*', c == '$':
			return nil, fmt.Errorf("split Schema.Indexes: %q at byte %d: block comments and dollar quoting are not supported here (use -- comments and quotes)", sql[i:min(i+2, len(sql))], i)
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out, nil
}

// inTx runs f in a transaction on the rebuild's connection.
func (rb *rebuild) inTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	tx, err := rb.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// replay applies the history after from into the rebuild's tables until the
// source says it is caught up, and returns where it stopped and the events
// applied, counting from applied. With fold (a Replayer's, from the start
// into empty tables) the batches are folded in memory and the result is
// written once at the end; without, each batch is applied in a transaction
// of its own.
//
// Reading and applying overlap (ReadAhead): the source reads and decodes
// on its own connection while this goroutine applies on the rebuild's.
func (rb *rebuild) replay(ctx context.Context, from domain.Position, applied int, fold Replay) (domain.Position, int, error) {
	pos := from
	err := ReadAhead(ctx, replayReadAhead, func(ctx context.Context, emit func(context.Context, Batch) error) error {
		return rb.src.Subscribe(ctx, from, rb.opts.BatchSize, func(ctx context.Context, b Batch) error {
			if err := emit(ctx, b); err != nil {
				return err
			}
			if b.CaughtUp {
				return errStop
			}
			return nil
		})
	}, func(ctx context.Context, b Batch) error {
		if len(b.Events) > 0 {
			var err error
			if fold != nil {
				err = rb.fold(ctx, fold, b.Events)
			} else {
				err = rb.applyBatch(ctx, b.Events)
			}
			if err != nil {
				return err
			}
			applied += len(b.Events)
		}
		if pos.Less(b.Checkpoint) {
			pos = b.Checkpoint
		}
		if len(b.Events) > 0 {
			rb.opts.Progress(applied, pos)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil && fold != nil {
		err = rb.write(ctx, func(tx pgx.Tx) error { return fold.Write(ctx, tx) })
	}
	return pos, applied, err
}

// MemoryFold is implemented by a Replay whose Fold writes nothing before
// Write: a rebuild then hands its Fold a nil tx, sparing each batch a
// transaction (BEGIN, search_path, COMMIT) that would do nothing.
type MemoryFold interface {
	Replay
	// FoldsInMemory marks the Replay; it is never called.
	FoldsInMemory()
}

// fold folds a batch of the replay, in a transaction of its own unless
// the Replay folds in memory only (MemoryFold).
func (rb *rebuild) fold(ctx context.Context, fold Replay, events []domain.RecordedEvent) error {
	f := func(tx pgx.Tx) error {
		if err := fold.Fold(ctx, tx, events); err != nil {
			return fmt.Errorf("fold %d events up to %s: %w", len(events), events[len(events)-1].Position, err)
		}
		return nil
	}
	if _, ok := fold.(MemoryFold); ok {
		return f(nil)
	}
	return rb.write(ctx, f)
}

// applyBatch applies events into the rebuild's tables in a transaction of
// their own.
func (rb *rebuild) applyBatch(ctx context.Context, events []domain.RecordedEvent) error {
	return rb.write(ctx, func(tx pgx.Tx) error {
		if err := rb.p.Apply(ctx, tx, events); err != nil {
			return fmt.Errorf("apply %d events up to %s: %w", len(events), events[len(events)-1].Position, err)
		}
		return nil
	})
}

// write runs f in a transaction of its own on the rebuild's tables
// (search_path).
func (rb *rebuild) write(ctx context.Context, f func(tx pgx.Tx) error) error {
	return rb.inTx(ctx, func(tx pgx.Tx) error {
		// Nothing depends on these commits surviving a crash (a rebuild
		// that dies starts over), so do not wait for the WAL flush.
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		if err := useSchema(ctx, tx, rb.schema); err != nil {
			return err
		}
		return f(tx)
	})
}

// swap replaces the live tables with the rebuild's, retrying when it could
// not lock them in time or lost a deadlock.
func (rb *rebuild) swap(ctx context.Context, pos domain.Position) (final domain.Position, inSwap int, err error) {
	for attempt := 1; ; attempt++ {
		final, inSwap, err = rb.swapOnce(ctx, pos)
		if err == nil || !retryableSwap(err) || attempt == swapAttempts {
			return final, inSwap, err
		}
		rb.log.Warn("rebuild: swap failed; trying again", "attempt", attempt, "err", err)
	}
}

// isInsufficientPrivilege reports whether the server refused err's
// statement to the role (SQLSTATE 42501).
func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// retryableSwap reports whether err is a lock timeout or a deadlock, after
// which the swap may well succeed if tried again.
func retryableSwap(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01") // lock_not_available, deadlock_detected
}

// swapOnce is the swap transaction. The live tables are locked first, then
// the checkpoint row: the runner's batches lock in the same order (rows, then
// checkpoint), so the two only deadlock when Apply itself touches the tables
// in another order than Tables lists them.
func (rb *rebuild) swapOnce(ctx context.Context, pos domain.Position) (domain.Position, int, error) {
	tx, err := rb.conn.Begin(ctx)
	if err != nil {
		return pos, 0, fmt.Errorf("begin swap: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", rb.opts.LockTimeout.Milliseconds())); err != nil {
		return pos, 0, err
	}
	live, err := liveTables(ctx, tx, rb.p.Tables())
	if err != nil {
		return pos, 0, err
	}
	comparer, compare := rb.p.(Comparer)
	mode := accessExclusive
	if compare {
		mode = share // readers go on while the tables are compared
	}
	if err := lockTables(ctx, tx, live, mode); err != nil {
		return pos, 0, err
	}
	liveCP, _, err := readCheckpoint(ctx, tx, rb.p.Name(), true)
	if err != nil {
		return pos, 0, err
	}
	inSwap := 0
	if pos.Less(liveCP) {
		if inSwap, err = rb.catchUp(ctx, tx, pos, liveCP); err != nil {
			return pos, 0, err
		}
		pos = liveCP
	}
	if compare && len(live) == len(rb.p.Tables()) {
		if err := rb.compare(ctx, tx, comparer); err != nil {
			return pos, 0, err
		}
		if err := lockTables(ctx, tx, live, accessExclusive); err != nil {
			return pos, 0, err
		}
	}
	if err := rb.replaceTables(ctx, tx, live); err != nil {
		return pos, 0, err
	}
	if err := setCheckpoint(ctx, tx, rb.p.Name(), pos); err != nil {
		return pos, 0, err
	}
	if err := notifyCheckpoint(ctx, tx, rb.p.Name(), pos); err != nil {
		return pos, 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return pos, 0, fmt.Errorf("commit swap: %w", err)
	}
	return pos, inSwap, nil
}

// liveTables returns those of tables that exist in the live schema (a new
// projection may not have created them yet).
func liveTables(ctx context.Context, tx pgx.Tx, tables []string) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)
		WHERE to_regclass(format('%I.%I', $2::text, t)) IS NOT NULL
		ORDER BY n`, tables, LiveSchema)
	if err != nil {
		return nil, fmt.Errorf("find live tables: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Lock modes of lockTables.
const (
	// accessExclusive takes the tables from readers and the runner.
	accessExclusive = "ACCESS EXCLUSIVE"
	// share keeps the runner from writing, and lets readers read.
	share = "SHARE"
)

// lockTables locks the live tables in mode until the swap commits.
func lockTables(ctx context.Context, tx pgx.Tx, tables []string, mode string) error {
	if len(tables) == 0 {
		return nil
	}
	sql := "LOCK TABLE " + qualified(LiveSchema, tables) + " IN " + mode + " MODE"
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("lock live tables: %w", err)
	}
	return nil
}

// SameDivergence is what a Comparer's divergence error implements so
// that a retried swap finding the very divergence already accepted does
// not ask AcceptDivergence again: SameAs reports whether other names the
// same differences (compared as values, never as text, which may be cut
// short). A divergence error without it is asked about every time.
type SameDivergence interface {
	error
	SameAs(other error) bool
}

func sameDivergence(err, accepted error) bool {
	var d SameDivergence
	return errors.As(err, &d) && d.SameAs(accepted)
}

// compare asks the Comparer whether the rebuilt tables agree with the live
// ones, and AcceptDivergence what to do when they do not.
func (rb *rebuild) compare(ctx context.Context, tx pgx.Tx, c Comparer) error {
	err := c.Compare(ctx, tx, rb.schema, LiveSchema)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, ErrDiverged):
		return fmt.Errorf("compare the rebuilt tables with the live ones: %w", err)
	case rb.opts.AcceptDivergence == nil:
		return err
	case rb.accepted != nil && sameDivergence(err, rb.accepted):
		return nil
	}
	rb.log.Warn("rebuild: the rebuilt tables differ from the live ones; asking whether to swap anyway", "err", err)
	if aerr := rb.opts.AcceptDivergence(ctx, err); aerr != nil {
		return aerr
	}
	rb.accepted = err
	rb.log.Warn("rebuild: swapping in tables that differ from the live ones, as accepted", "err", err)
	return nil
}

// catchUp applies, inside the swap, the events after from up to the live
// checkpoint to, which the live runner applied while the rebuild replayed.
// It returns how many it applied.
func (rb *rebuild) catchUp(ctx context.Context, tx pgx.Tx, from, to domain.Position) (int, error) {
	if err := useSchema(ctx, tx, rb.schema); err != nil {
		return 0, err
	}
	applied := 0
	err := rb.src.Subscribe(ctx, from, rb.opts.BatchSize, func(ctx context.Context, b Batch) error {
		events := upTo(b.Events, to)
		if len(events) > 0 {
			if err := rb.p.Apply(ctx, tx, events); err != nil {
				return fmt.Errorf("apply %d events up to the live checkpoint %s: %w", len(events), to, err)
			}
			applied += len(events)
		}
		switch {
		case !b.Checkpoint.Less(to):
			return errStop
		case b.CaughtUp:
			return fmt.Errorf("source ends at %s, before the live checkpoint %s", b.Checkpoint, to)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil {
		err = useSchema(ctx, tx, LiveSchema)
	}
	return applied, err
}

// upTo returns the events at or before pos.
func upTo(events []domain.RecordedEvent, pos domain.Position) []domain.RecordedEvent {
	for i, e := range events {
		if pos.Less(e.Position) {
			return events[:i]
		}
	}
	return events
}

// replaceTables drops the live tables and moves the rebuild's in, with their
// indexes, constraints and owned sequences, then drops the emptied schema.
// The new tables first take the live ones' owner and privileges, so that
// the service's role, which owns nothing and runs no DDL, reads and writes
// them as before. The schema is dropped without CASCADE: anything else
// Schema.Tables left there (a type a column uses, say) fails the swap
// rather than silently breaking the new live tables.
func (rb *rebuild) replaceTables(ctx context.Context, tx pgx.Tx, live []string) error {
	if err := rb.copyPrivileges(ctx, tx, live); err != nil {
		return err
	}
	if len(live) > 0 {
		if _, err := tx.Exec(ctx, "DROP TABLE "+qualified(LiveSchema, live)+" CASCADE"); err != nil {
			return fmt.Errorf("drop live tables: %w", err)
		}
	}
	for _, t := range rb.p.Tables() {
		sql := "ALTER TABLE " + qualified(rb.schema, []string{t}) + " SET SCHEMA " + pgx.Identifier{LiveSchema}.Sanitize()
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("move %s into %s: %w", t, LiveSchema, err)
		}
	}
	if _, err := tx.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{rb.schema}.Sanitize()); err != nil {
		return fmt.Errorf("drop schema %s (Schema.Tables must create only tables, with what belongs to them): %w", rb.schema, err)
	}
	return nil
}

// copyPrivileges gives each rebuilt table the owner of its live
// counterpart, when another role ran the rebuild, and grants on it what is
// granted on the live one (to the service's role above all), with the
// same grant options.
func (rb *rebuild) copyPrivileges(ctx context.Context, tx pgx.Tx, live []string) error {
	rows, err := tx.Query(ctx, `
		SELECT format('ALTER TABLE %I.%I OWNER TO %I', $2::text, t, pg_catalog.pg_get_userbyid(c.relowner))
		FROM unnest($3::text[]) AS u(t)
		JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(format('%I.%I', $1::text, t))
		JOIN pg_catalog.pg_class r ON r.oid = pg_catalog.to_regclass(format('%I.%I', $2::text, t))
		WHERE r.relowner <> c.relowner
		UNION ALL
		SELECT format('GRANT %s ON TABLE %I.%I TO %s%s', a.privilege_type, $2::text, t,
		              CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
		              CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
		FROM unnest($3::text[]) AS u(t)
		JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(format('%I.%I', $1::text, t))
		CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE a.grantee <> c.relowner`, LiveSchema, rb.schema, live)
	if err != nil {
		return fmt.Errorf("read the live tables' privileges: %w", err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the live tables' privileges: %w", err)
	}
	for _, sql := range stmts {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("give the rebuilt tables the live ones' owner and privileges: %s: %w", sql, err)
		}
	}
	return nil
}

// cleanUp drops the rebuild schema after a failure. It is only tidying up
// (the next rebuild drops the schema anyway), so it is skipped when the
// connection is gone: without it the rebuild lock is gone too, and the
// schema may already belong to another rebuild.
func (rb *rebuild) cleanUp() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if !alive(ctx, rb.conn) {
		return
	}
	if _, err := rb.conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{rb.schema}.Sanitize()+" CASCADE"); err != nil {
		rb.log.Warn("rebuild: drop the schema of the failed rebuild", "schema", rb.schema, "err", err)
	}
}

// qualified lists tables of schema, quoted, for SQL.
func qualified(schema string, tables []string) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{schema, t}.Sanitize()
	}
	return strings.Join(names, ", ")
}
