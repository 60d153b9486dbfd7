package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/usersd/usersd/domain"
)

// NotifyChannel is where every move of a checkpoint is announced, with the
// payload "<projection name> <position>" (Position.String). Waiters in any
// process listen on it.
const NotifyChannel = "usersd_projections"

// LiveSchema holds the tables the service reads from.
const LiveSchema = "public"

// querier is what both a connection and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readCheckpoint returns the projection's checkpoint; ok is false when it
// has none yet (nothing applied: start from the zero Position).
func readCheckpoint(ctx context.Context, q querier, name string, forUpdate bool) (pos domain.Position, ok bool, err error) {
	sql := `SELECT commit_position, prepare_position FROM projection_checkpoints WHERE name = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var c, p int64
	err = q.QueryRow(ctx, sql, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Position{}, false, nil
	}
	if err != nil {
		return domain.Position{}, false, fmt.Errorf("read checkpoint of %s: %w", name, err)
	}
	return domain.Position{Commit: uint64(c), Prepare: uint64(p)}, true, nil
}

// moveCheckpoint sets the checkpoint to to, but only if it still is from
// (or absent, when from is zero), and announces the move on NotifyChannel,
// in one statement: a round trip less per batch. It reports false when the
// checkpoint was not from, which means someone else moved it since this
// runner read it: the batch must not commit, and its notification, sent
// inside the transaction, goes nowhere with the rollback.
func moveCheckpoint(ctx context.Context, tx pgx.Tx, name string, from, to domain.Position) (bool, error) {
	fc, fp, err := PositionColumns(from)
	if err != nil {
		return false, err
	}
	tc, tp, err := PositionColumns(to)
	if err != nil {
		return false, err
	}
	// From zero, a missing row is inserted, and an existing one is
	// updated only if it still holds zero (ON CONFLICT ... WHERE affects
	// no row otherwise). From a position, the row was there when the
	// runner read it: a plain UPDATE ... WHERE moves it only if it still
	// holds from (waiting for, then rechecking, a concurrent move), and
	// writes no lock record to the WAL as ON CONFLICT DO UPDATE does, once
	// per batch of every projection.
	var moved int
	if from.IsZero() {
		err = tx.QueryRow(ctx, `
		WITH moved AS (
			INSERT INTO projection_checkpoints AS c (name, commit_position, prepare_position)
			VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE
			SET commit_position = excluded.commit_position,
			    prepare_position = excluded.prepare_position,
			    updated_at = now()
			WHERE c.commit_position = $4 AND c.prepare_position = $5
			RETURNING 1)
		SELECT (SELECT count(*) FROM moved), pg_notify($6, $7)`,
			name, tc, tp, fc, fp, NotifyChannel, name+" "+to.String()).Scan(&moved, nil)
	} else {
		err = tx.QueryRow(ctx, `
		WITH moved AS (
			UPDATE projection_checkpoints
			SET commit_position = $2, prepare_position = $3, updated_at = now()
			WHERE name = $1 AND commit_position = $4 AND prepare_position = $5
			RETURNING 1)
		SELECT (SELECT count(*) FROM moved), pg_notify($6, $7)`,
			name, tc, tp, fc, fp, NotifyChannel, name+" "+to.String()).Scan(&moved, nil)
	}
	if err != nil {
		return false, fmt.Errorf("move checkpoint of %s to %s: %w", name, to, err)
	}
	return moved == 1, nil
}

// setCheckpoint sets the checkpoint whatever it holds; the caller has locked
// the row.
func setCheckpoint(ctx context.Context, tx pgx.Tx, name string, to domain.Position) error {
	c, p, err := PositionColumns(to)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO projection_checkpoints (name, commit_position, prepare_position)
		VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE
		SET commit_position = excluded.commit_position,
		    prepare_position = excluded.prepare_position,
		    updated_at = now()`,
		name, c, p)
	if err != nil {
		return fmt.Errorf("set checkpoint of %s to %s: %w", name, to, err)
	}
	return nil
}

// notifyCheckpoint announces the move on NotifyChannel. Sent inside the
// transaction, it is delivered if and only if the transaction commits.
func notifyCheckpoint(ctx context.Context, tx pgx.Tx, name string, pos domain.Position) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, name+" "+pos.String()); err != nil {
		return fmt.Errorf("notify checkpoint of %s: %w", name, err)
	}
	return nil
}

// parseNotification reads a NotifyChannel payload. The name is everything
// before the last space, so a name may contain spaces.
func parseNotification(payload string) (string, domain.Position, error) {
	for i := len(payload) - 1; i > 0; i-- {
		if payload[i] == ' ' {
			pos, err := domain.ParsePosition(payload[i+1:])
			return payload[:i], pos, err
		}
	}
	return "", domain.Position{}, fmt.Errorf("notification %q: want <name> <position>", payload)
}

// useSchema makes the transaction's unqualified table names resolve in
// schema first, so Apply fills the live tables or a rebuild's. SET LOCAL
// ends with the transaction: a pooled connection goes back unchanged.
func useSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	path := pgx.Identifier{schema}.Sanitize()
	if schema != LiveSchema {
		path += ", " + LiveSchema
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+path); err != nil {
		return fmt.Errorf("set search_path to %s: %w", path, err)
	}
	return nil
}

// advisoryKey derives a session advisory lock key from a name. A 64-bit FNV
// hash (rather than hashtext's 32 bits) makes collisions between names
// negligible; the prefix keeps the keys apart from other users of
// single-key advisory locks (the migrations).
func advisoryKey(kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("usersd." + kind + "." + name))
	return int64(h.Sum64())
}

// tryAdvisoryLock takes a session-level advisory lock without waiting. The
// lock lives as long as conn's session, so it is released when the
// connection closes or dies.
func tryAdvisoryLock(ctx context.Context, conn *pgx.Conn, key int64) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		return false, fmt.Errorf("take advisory lock: %w", err)
	}
	return ok, nil
}

// connect opens a connection of its own (outside the pool, so a long-held
// lock does not take a pool slot), named for pg_stat_activity.
func connect(ctx context.Context, cfg *pgx.ConnConfig, appName string) (*pgx.Conn, error) {
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = appName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// closeConn closes conn without waiting long: it is only the polite end of a
// session that ends anyway when the socket closes.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// AppName is the application_name of the connections a runner, a waiter or
// a rebuild opens for projection name (kind "projection", "rebuild"), so an
// operator can find them in pg_stat_activity.
func AppName(kind, name string) string { return "usersd " + kind + " " + name }
