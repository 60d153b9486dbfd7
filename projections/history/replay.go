package history

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/userlist"
)

var _ projections.Replayer = (*Projection)(nil)

// NewReplay implements projections.Replayer. A rebuild keeps each
// person's open interval in memory, and COPYs an interval once, when an
// event closes it (a closed interval is final: only an account's deletion
// blanks it later, with the same UPDATE Apply runs), and the open ones at
// the end. Apply instead reads back the open interval of every person a
// batch touches and updates it when it closes.
//
// Memory: the open intervals, one per row of the user list (about 500
// bytes each with the map entries), and a batch's closed ones; the
// access reviews are written as their events come, with Apply's
// statements.
func (p *Projection) NewReplay() projections.Replay {
	return &replay{
		open:   make(map[uuid.UUID]map[uuid.UUID]*interval),
		byUser: make(map[uuid.UUID][]uuid.UUID),
		pos:    projections.NewReplayPositions(),
	}
}

// replay is the history as the events folded so far leave it, the
// intervals closed so far written.
type replay struct {
	// open holds each workspace's open intervals by person.
	open map[uuid.UUID]map[uuid.UUID]*interval
	// byUser lists the workspaces where a person had an interval opened
	// (maybe twice, or closed since): what an AccountDeleted looks through.
	byUser map[uuid.UUID][]uuid.UUID
	pos    *projections.ReplayPositions
}

// Fold implements projections.Replay: the batch's closed intervals are
// COPYed in tx, then its review and deletion statements run, in event
// order, as Apply queues them.
func (r *replay) Fold(ctx context.Context, tx pgx.Tx, events []domain.RecordedEvent) error {
	var closed intervalSet
	q := &pgx.Batch{}
	err := r.pos.Fold(events, handling, func(ev *domain.RecordedEvent) error {
		e, ok := ev.Event.(domain.AccountDeleted)
		if !ok {
			return projections.ErrNoCase("history", ev.Event)
		}
		return r.deleted(ev, e, &closed, q)
	}, func(_ uuid.UUID, ev *domain.RecordedEvent) error {
		if isReview(ev.Event) {
			return r.review(ev, q)
		}
		return r.apply(ev, &closed)
	})
	if err != nil {
		return err
	}
	if err := copyIntervals(ctx, tx, &closed); err != nil {
		return err
	}
	if q.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("history: write: %w", err)
	}
	return nil
}

// apply folds one event about a person, as applyEvent does: a change
// closes the open interval (into closed) and opens the next.
func (r *replay) apply(ev *domain.RecordedEvent, closed *intervalSet) error {
	ws, user, ok := projections.PersonOf(ev.Event)
	if !ok {
		return projections.ErrNoCase("history", ev.Event)
	}
	k := key{ws, user}
	prev := r.open[ws][user]
	var next userlist.Member
	if prev != nil {
		next = prev.Member
	}
	change, ok := userlist.Next(&next, prev != nil, ev)
	if !ok {
		return projections.ErrNoCase("history", ev.Event)
	}
	if change == userlist.Unchanged {
		return nil
	}
	if prev != nil {
		prev.to, prev.toAt = ev.Position, ev.Metadata.OccurredAt
		if err := closed.add(k, prev); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		delete(r.open[ws], user)
	}
	if change == userlist.Ended {
		return nil
	}
	iv := opened(ev, next, prev, change)
	m := r.open[ws]
	if m == nil {
		m = make(map[uuid.UUID]*interval)
		r.open[ws] = m
	}
	m[user] = iv
	if prev == nil {
		r.byUser[user] = append(r.byUser[user], ws)
	}
	return nil
}

// deleted folds an account's deletion as Apply's closeDeleted does (the
// person's open intervals end at it), and queues the UPDATEs that blank
// what is written of them, intervals and review items (blankDeleted,
// blankDeletedItems), after the batch's intervals are COPYed.
func (r *replay) deleted(ev *domain.RecordedEvent, e domain.AccountDeleted, closed *intervalSet, q *pgx.Batch) error {
	at := ev.Metadata.OccurredAt
	if at.IsZero() {
		at = e.DeletedAt
	}
	for _, ws := range r.byUser[e.UserID] {
		iv := r.open[ws][e.UserID]
		if iv == nil {
			continue
		}
		iv.to, iv.toAt = ev.Position, at
		if err := closed.add(key{ws, e.UserID}, iv); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		delete(r.open[ws], e.UserID)
	}
	delete(r.byUser, e.UserID)
	q.Queue(blankDeleted, projections.PGID(e.UserID))
	q.Queue(blankDeletedItems, projections.PGID(e.UserID))
	return nil
}

// replayItems is materialiseItems with the population handed over: the
// intervals open at the review's start are those in memory (the rest are
// written, closed before it), and the dormancy is PostgreSQL's arithmetic,
// as in Apply.
const replayItems = `INSERT INTO access_review_items (workspace_id, review_id, user_id, email, name, role, status,
		granted_by, granted_at, last_login_at, dormant)
	SELECT $1, $2, i.user_id, i.email, i.name, i.role, i.status, i.granted_by, i.granted_at, i.last_login_at,
		i.last_login_at IS NULL OR i.last_login_at < $3::timestamptz - interval '` + DormantAfter + `'
	FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::uuid[], $10::timestamptz[], $11::timestamptz[])
		AS i(user_id, email, name, role, status, granted_by, granted_at, last_login_at)
	ON CONFLICT (workspace_id, review_id, user_id) DO NOTHING`

// review queues a review's statements. A start's population is the
// workspace's open intervals now: those that hold its position.
func (r *replay) review(ev *domain.RecordedEvent, q *pgx.Batch) error {
	e, ok := ev.Event.(domain.AccessReviewStarted)
	if !ok {
		return queueReviews(q, []*domain.RecordedEvent{ev})
	}
	c, p, err := posColumns(ev.Position)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	m := ev.Metadata
	actor := pgtype.UUID{Bytes: m.Actor.UserID, Valid: m.Actor.UserID != uuid.Nil}
	at := projections.Timestamp(e.StartedAt, m.OccurredAt)
	ws, id := projections.PGID(e.WorkspaceID), projections.PGID(e.ReviewID)
	q.Queue(insertReview, ws, id, e.Name, actor, at, c, p, projections.Int32(e.Items))
	var (
		users, grantedBy        []pgtype.UUID
		emails, roles, statuses []string
		names                   []pgtype.Text
		grantedAt, lastLogin    []pgtype.Timestamptz
	)
	for user, iv := range r.open[e.WorkspaceID] {
		users, grantedBy = append(users, projections.PGID(user)), append(grantedBy, iv.grantedBy)
		emails, names, roles, statuses = append(emails, iv.Email), append(names, iv.Name), append(roles, iv.Role), append(statuses, iv.Status)
		grantedAt, lastLogin = append(grantedAt, iv.grantedAt), append(lastLogin, iv.LastLogin)
	}
	if len(users) > 0 {
		q.Queue(replayItems, ws, id, at, users, emails, names, roles, statuses, grantedBy, grantedAt, lastLogin)
	}
	return nil
}

// Write implements projections.Replay: the open intervals and the
// workspaces' positions.
func (r *replay) Write(ctx context.Context, tx pgx.Tx) error {
	var open intervalSet
	for ws, m := range r.open {
		for user, iv := range m {
			if err := open.add(key{ws, user}, iv); err != nil {
				return fmt.Errorf("history: %w", err)
			}
		}
	}
	if err := copyIntervals(ctx, tx, &open); err != nil {
		return err
	}
	var rows [][]any
	if err := r.pos.Each(func(ws uuid.UUID, commit, prepare int64) error {
		rows = append(rows, []any{projections.PGID(ws), commit, prepare})
		return nil
	}); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"history_workspaces"}, []string{"workspace_id", "pos_commit", "pos_prepare"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("history: copy history_workspaces: %w", err)
	}
	return nil
}

// intervalColumns are insertIntervals' columns, in its order.
var intervalColumns = []string{"workspace_id", "user_id",
	"valid_from_commit", "valid_from_prepare", "valid_from_at", "valid_to_commit", "valid_to_prepare", "valid_to_at",
	"email", "name", "role", "status", "invitation_id", "invited_at", "invited_by", "expires_at", "expired", "attempt", "email_status",
	"last_login_at", "changed_by", "action", "event_id", "role_until", "granted_by", "granted_at"}

// copyIntervals COPYs the intervals of s into membership_intervals.
func copyIntervals(ctx context.Context, tx pgx.Tx, s *intervalSet) error {
	if len(s.ws) == 0 {
		return nil
	}
	i := 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"membership_intervals"}, intervalColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(s.ws) {
			return nil, nil
		}
		row := []any{s.ws[i], s.user[i], s.fc[i], s.fp[i], s.fromAt[i], s.tc[i], s.tp[i], s.toAt[i],
			s.email[i], s.name[i], s.role[i], s.status[i], s.inv[i], s.invitedAt[i], s.by[i], s.expiresAt[i],
			s.expired[i], s.attempt[i], s.emailStatus[i], s.login[i], s.changedBy[i], s.action[i], s.eventID[i],
			s.roleUntil[i], s.grantedBy[i], s.grantedAt[i]}
		i++
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("history: copy membership_intervals: %w", err)
	}
	return nil
}
