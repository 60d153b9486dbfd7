package history

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Access reviews (access_reviews, access_review_items in tables.sql). Their
// events change no interval: Apply queues their writes after the batch's
// intervals, in event order, so that a start materialises its population
// from the intervals as of its own position (those of later events in the
// batch are outside that position), and an account's deletion later in the
// batch blanks what the start copied.

// DormantAfter is how long without a login makes a member dormant in a
// review: no login in the 90 days before its start (or never).
const DormantAfter = "90 days"

// isReview reports whether e is an access review's event.
func isReview(e domain.Event) bool {
	switch e.(type) {
	case domain.AccessReviewStarted, domain.AccessReviewItemDecided, domain.AccessReviewCompleted:
		return true
	}
	return false
}

const (
	insertReview = `INSERT INTO access_reviews (workspace_id, review_id, name, started_by, started_at, as_of_commit, as_of_prepare, items)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (workspace_id, review_id) DO NOTHING`
	// materialiseItems copies the list as of the start ($3, $4) into the
	// review, in one statement: the intervals that hold the start, with who
	// set each role and when (granted_*).
	materialiseItems = `INSERT INTO access_review_items (workspace_id, review_id, user_id, email, name, role, status,
			granted_by, granted_at, last_login_at, dormant)
		SELECT $1, $2, i.user_id, i.email, i.name, i.role, i.status, i.granted_by, i.granted_at, i.last_login_at,
			i.last_login_at IS NULL OR i.last_login_at < $5::timestamptz - interval '` + DormantAfter + `'
		FROM membership_intervals i
		WHERE i.workspace_id = $1 AND (i.valid_from_commit, i.valid_from_prepare) <= ($3, $4)
			AND (i.valid_to_commit IS NULL OR (i.valid_to_commit, i.valid_to_prepare) > ($3, $4))
		ON CONFLICT (workspace_id, review_id, user_id) DO NOTHING`
	// decideItem sets the decision in force and counts the item decided
	// the first time.
	decideItem = `WITH before AS (
			SELECT decision FROM access_review_items WHERE workspace_id = $1 AND review_id = $2 AND user_id = $3
		), item AS (
			UPDATE access_review_items SET decision = $4, new_role = $5, comment = $6, decided_by = $7, decided_at = $8
			WHERE workspace_id = $1 AND review_id = $2 AND user_id = $3
		)
		UPDATE access_reviews SET decided = decided + 1
		WHERE workspace_id = $1 AND review_id = $2 AND EXISTS (SELECT 1 FROM before WHERE decision IS NULL)`
	completeReview = `UPDATE access_reviews
		SET completed_by = $3, completed_at = $4, completed_commit = $5, completed_prepare = $6, completed_event_id = $7
		WHERE workspace_id = $1 AND review_id = $2 AND completed_at IS NULL`
	// An account's deletion blanks what the reviews copied of the person.
	// No index leads with user_id: it scans, as blankDeleted does.
	blankDeletedItems = `UPDATE access_review_items SET email = '', name = NULL, comment = NULL
		WHERE user_id = $1 AND (email <> '' OR name IS NOT NULL OR comment IS NOT NULL)`
)

// queueReviews queues the writes of the batch's review events, in order.
func queueReviews(b *pgx.Batch, events []*domain.RecordedEvent) error {
	for _, ev := range events {
		c, p, err := posColumns(ev.Position)
		if err != nil {
			return err
		}
		m := ev.Metadata
		actor := pgtype.UUID{Bytes: m.Actor.UserID, Valid: m.Actor.UserID != uuid.Nil}
		switch e := ev.Event.(type) {
		case domain.AccessReviewStarted:
			at := projections.Timestamp(e.StartedAt, m.OccurredAt)
			ws, id := projections.PGID(e.WorkspaceID), projections.PGID(e.ReviewID)
			b.Queue(insertReview, ws, id, e.Name, actor, at, c, p, projections.Int32(e.Items))
			b.Queue(materialiseItems, ws, id, c, p, at)
		case domain.AccessReviewItemDecided:
			b.Queue(decideItem, projections.PGID(e.WorkspaceID), projections.PGID(e.ReviewID), projections.PGID(e.UserID),
				e.Decision, optText(e.NewRole), optText(e.Comment), actor, m.OccurredAt)
		case domain.AccessReviewCompleted:
			b.Queue(completeReview, projections.PGID(e.WorkspaceID), projections.PGID(e.ReviewID), actor, m.OccurredAt, c, p,
				projections.PGID(m.EventID))
		default:
			return fmt.Errorf("history: %s is not a review's event", domain.EventName(ev.Event))
		}
	}
	return nil
}

func optText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
