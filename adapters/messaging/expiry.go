package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/internal/positive"
)

// Expiry marks invitations whose time is up as expired, and ends temporary
// roles whose time is up. One replica at a time runs it (a PostgreSQL
// advisory lock held on a connection of its own); it keeps nothing of its
// own, so a restart loses nothing: the due invitations and roles are found
// again in the user list (expires_at, role_until), and the workspace
// aggregate decides, so a stale read model costs at most a command that
// records nothing, and a role ends exactly once.
type Expiry struct {
	pool     *pgxpool.Pool
	expire   commands.Handler[commands.ExpireInvitations, commands.ExpireInvitationsResult]
	clock    commands.Clock
	log      *slog.Logger
	maxSleep time.Duration
}

// NewExpiry returns the scheduler; it looks again at the next expiry the user
// list shows, and at least every maxSleep (default 1 min).
func NewExpiry(pool *pgxpool.Pool, expire commands.Handler[commands.ExpireInvitations, commands.ExpireInvitationsResult], clock commands.Clock, log *slog.Logger, maxSleep time.Duration) *Expiry {
	maxSleep = positive.Or(maxSleep, time.Minute)
	if log == nil {
		log = slog.Default()
	}
	return &Expiry{pool: pool, expire: expire, clock: clock, log: log, maxSleep: maxSleep}
}

// expiryLock names the advisory lock of the scheduler.
const expiryLock = "usersd invitation expiry"

// Run expires invitations until ctx ends, standing by while another
// replica holds the lock.
func (x *Expiry) Run(ctx context.Context) error {
	return leadLocked(ctx, x.log, "expiry", x.pool, expiryLock, x.step)
}

// step sweeps, while this replica holds the lock, and answers how long to
// wait for the next: until the next expiry, at most maxSleep.
func (x *Expiry) step(ctx context.Context, conn *pgxpool.Conn) (time.Duration, error) {
	next, err := x.Sweep(ctx, conn.Conn())
	if err != nil {
		return 0, err
	}
	wait := x.maxSleep
	if !next.IsZero() {
		wait = min(wait, max(next.Sub(x.clock.Now()), 50*time.Millisecond))
	}
	return wait, nil
}

// Sweep expires what is due now (invitations and temporary roles) and
// answers the next expiry the user list knows of (zero if none).
func (x *Expiry) Sweep(ctx context.Context, conn *pgx.Conn) (time.Time, error) {
	now := x.clock.Now()
	rows, err := conn.Query(ctx, `
		SELECT workspace_id FROM userlist_users
		WHERE status = 'invited' AND NOT expired AND expires_at <= $1
		UNION
		SELECT workspace_id FROM userlist_users WHERE role_until <= $1`, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("find due invitations: %w", err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return time.Time{}, fmt.Errorf("find due invitations: %w", err)
	}
	for _, ws := range due {
		res, err := x.expire.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws, Meta: commands.Meta{CorrelationID: "usersd-expiry"}})
		if err != nil {
			return time.Time{}, fmt.Errorf("expire invitations of workspace %s: %w", ws, err)
		}
		if res.Expired > 0 {
			x.log.Info("expiry: invitations expired", "workspace", ws, "count", res.Expired)
		}
		if res.RoleGrants > 0 {
			x.log.Info("expiry: temporary roles ended", "workspace", ws, "count", res.RoleGrants)
		}
	}
	var next *time.Time
	err = conn.QueryRow(ctx, `
		SELECT least(
			(SELECT min(expires_at) FROM userlist_users
			 WHERE status = 'invited' AND NOT expired AND expires_at > $1),
			(SELECT min(role_until) FROM userlist_users WHERE role_until > $1))`, now).Scan(&next)
	if err != nil || next == nil {
		return time.Time{}, err
	}
	return *next, nil
}
