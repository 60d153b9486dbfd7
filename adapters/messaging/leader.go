package messaging

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/pause"
)

// keepLeading runs lead until ctx ends, again a second after each return
// (lead returns nil at once while another replica leads), logging why it
// stopped when it failed.
func keepLeading(ctx context.Context, log *slog.Logger, what string, lead func(context.Context) error) error {
	for {
		err := lead(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Warn(what+": stopped; trying again", "err", err)
		}
		if err := pause.For(ctx, time.Second); err != nil {
			return err
		}
	}
}

// leadLocked runs step over and over while this replica holds the
// advisory lock named lock (on a connection of the pool, which step
// receives), pausing between steps for as long as step answers; it stands
// by while another replica holds the lock, and goes on until ctx ends,
// logging each failure as what's (keepLeading).
func leadLocked(ctx context.Context, log *slog.Logger, what string, pool *pgxpool.Pool, lock string, step func(context.Context, *pgxpool.Conn) (time.Duration, error)) error {
	key := lockKey(lock)
	return keepLeading(ctx, log, what, func(ctx context.Context) error {
		return whileLocked(ctx, pool, key, func(conn *pgxpool.Conn) error {
			for {
				wait, err := step(ctx, conn)
				if err != nil {
					return err
				}
				if err := pause.For(ctx, wait); err != nil {
					return err
				}
			}
		})
	})
}

// whileLocked takes the advisory lock key on a connection of the pool and
// runs work with that connection while it holds it; it answers nil at once
// when another session holds the lock. The lock is released before the
// connection goes back to the pool.
func whileLocked(ctx context.Context, pool *pgxpool.Pool, key int64, work func(*pgxpool.Conn) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	}()
	return work(conn)
}
