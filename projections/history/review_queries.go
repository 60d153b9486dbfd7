package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// Statuses of a review.
const (
	ReviewOpen      = "open"
	ReviewCompleted = "completed"
)

// StatusRemoved is the status of a review's item whose person is no longer
// in the workspace (removed, or their invitation revoked).
const StatusRemoved = "removed"

// Person is someone an access review shows: who started, completed or
// decided, who granted a role. Email and Name are nil once the person was
// erased (Erased), and when the history never knew them.
type Person struct {
	UserID uuid.UUID `json:"userId"`
	Email  *string   `json:"email"`
	Name   *string   `json:"name"`
	Erased bool      `json:"erased"`
}

// ReviewHead is what a review's list row and the review itself both show.
type ReviewHead struct {
	ReviewID  uuid.UUID `json:"reviewId"`
	Name      string    `json:"name"`
	StartedAt time.Time `json:"startedAt"`
	StartedBy *Person   `json:"startedBy"`
	Status    string    `json:"status"`
	// AsOfPosition is the start's position: the population is the list as
	// of it.
	AsOfPosition string     `json:"asOfPosition"`
	Decided      int        `json:"decided"`
	CompletedAt  *time.Time `json:"completedAt"`
	CompletedBy  *Person    `json:"completedBy"`
}

// ReviewSummary is a review in the list of a workspace's reviews, with
// how many items it holds.
type ReviewSummary struct {
	ReviewHead
	Items int `json:"items"`
}

// Review is one review with its items.
type Review struct {
	ReviewHead
	Items []ReviewItem `json:"items"`
	// CompletedPosition and CompletedEventID are the completion's, which
	// find its audit entry (the evidence's head); zero while open.
	CompletedPosition domain.Position `json:"-"`
	CompletedEventID  uuid.UUID       `json:"-"`
}

// ReviewItem is one person of a review: as the list showed them at the
// start (role, status then, who granted the role and when, last login,
// dormant), their status now (as of the completion once completed:
// active, suspended, invited or removed), and the decision in force.
// Email, DisplayName and Comment are nil once the person was erased.
type ReviewItem struct {
	UserID        uuid.UUID     `json:"userId"`
	Email         *string       `json:"email"`
	DisplayName   *string       `json:"displayName"`
	Erased        bool          `json:"erased"`
	Role          domain.Role   `json:"role"`
	Status        string        `json:"status"`
	StatusAtStart domain.Status `json:"statusAtStart"`
	GrantedBy     *Person       `json:"grantedBy"`
	GrantedAt     *time.Time    `json:"grantedAt"`
	LastLoginAt   *time.Time    `json:"lastLoginAt"`
	Dormant       bool          `json:"dormant"`
	Decision      *string       `json:"decision"`
	NewRole       *domain.Role  `json:"newRole"`
	DecidedBy     *Person       `json:"decidedBy"`
	DecidedAt     *time.Time    `json:"decidedAt"`
	Comment       *string       `json:"comment"`
}

// ErrReviewNotFound answers a review the workspace does not have.
var ErrReviewNotFound = &domain.Error{Code: domain.CodeReviewNotFound, Message: "no such access review in this workspace"}

const reviewColumns = `review_id, name, started_by, started_at, as_of_commit, as_of_prepare, items, decided,
	completed_by, completed_at, completed_commit, completed_prepare, completed_event_id`

type reviewRow struct {
	id, eventID       pgtype.UUID
	name              string
	startedBy, doneBy pgtype.UUID
	startedAt         time.Time
	asOfC, asOfP      int64
	items, decided    int32
	doneAt            pgtype.Timestamptz
	doneC, doneP      pgtype.Int8
	startedP, doneByP *Person
	completedPosition domain.Position
}

func scanReview(rows pgx.Row) (*reviewRow, error) {
	r := &reviewRow{}
	err := rows.Scan(&r.id, &r.name, &r.startedBy, &r.startedAt, &r.asOfC, &r.asOfP, &r.items, &r.decided,
		&r.doneBy, &r.doneAt, &r.doneC, &r.doneP, &r.eventID)
	if err != nil {
		return nil, err
	}
	if r.doneC.Valid {
		r.completedPosition = domain.Position{Commit: uint64(r.doneC.Int64), Prepare: uint64(r.doneP.Int64)}
	}
	return r, nil
}

func (r *reviewRow) status() string {
	if r.doneAt.Valid {
		return ReviewCompleted
	}
	return ReviewOpen
}

// head is the review as a list row and the review show it, once the
// people asked for are loaded.
func (r *reviewRow) head() ReviewHead {
	return ReviewHead{
		ReviewID: r.id.Bytes, Name: r.name, StartedAt: r.startedAt, StartedBy: r.startedP, Status: r.status(),
		AsOfPosition: domain.Position{Commit: uint64(r.asOfC), Prepare: uint64(r.asOfP)}.String(), Decided: int(r.decided),
		CompletedAt: timePtr(r.doneAt), CompletedBy: r.doneByP,
	}
}

// Reviews lists the workspace's reviews, the latest started first.
func (q *Queries) Reviews(ctx context.Context, ws uuid.UUID) ([]ReviewSummary, error) {
	rows, err := q.db.Query(ctx, `SELECT `+reviewColumns+` FROM access_reviews WHERE workspace_id = $1
		ORDER BY started_at DESC, review_id DESC`, projections.PGID(ws))
	if err != nil {
		return nil, fmt.Errorf("history: reviews: %w", err)
	}
	var list []*reviewRow
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("history: reviews: %w", err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: reviews: %w", err)
	}
	people := newPeople()
	for _, r := range list {
		r.startedP, r.doneByP = people.ask(r.startedBy), people.ask(r.doneBy)
	}
	if err := people.load(ctx, q.db, ws); err != nil {
		return nil, err
	}
	out := make([]ReviewSummary, len(list))
	for i, r := range list {
		out[i] = ReviewSummary{ReviewHead: r.head(), Items: int(r.items)}
	}
	return out, nil
}

// Review answers one review with its items, in the list's order (display
// name, then user id); ErrReviewNotFound if the workspace has no such
// review.
func (q *Queries) Review(ctx context.Context, ws, id uuid.UUID) (Review, error) {
	r, err := scanReview(q.db.QueryRow(ctx, `SELECT `+reviewColumns+` FROM access_reviews WHERE workspace_id = $1 AND review_id = $2`,
		projections.PGID(ws), projections.PGID(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Review{}, ErrReviewNotFound
	}
	if err != nil {
		return Review{}, fmt.Errorf("history: review: %w", err)
	}
	// The status now, or as of the completion: the interval that holds
	// that position, if it has not ended by then.
	atC, atP := int64(math.MaxInt64), int64(math.MaxInt64)
	if r.doneC.Valid {
		atC, atP = r.doneC.Int64, r.doneP.Int64
	}
	rows, err := q.db.Query(ctx, `SELECT it.user_id, it.email, it.name, it.role, it.status, it.granted_by, it.granted_at,
			it.last_login_at, it.dormant, it.decision, it.new_role, it.comment, it.decided_by, it.decided_at,
			CASE WHEN cur.status IS NOT NULL AND (cur.tc IS NULL OR (cur.tc, cur.tp) > ($3, $4)) THEN cur.status ELSE '`+StatusRemoved+`' END
		FROM access_review_items it
		LEFT JOIN LATERAL (
			SELECT i.status, i.valid_to_commit AS tc, i.valid_to_prepare AS tp FROM membership_intervals i
			WHERE i.workspace_id = it.workspace_id AND i.user_id = it.user_id
				AND (i.valid_from_commit, i.valid_from_prepare) <= ($3, $4)
			ORDER BY i.valid_from_commit DESC, i.valid_from_prepare DESC LIMIT 1
		) cur ON true
		WHERE it.workspace_id = $1 AND it.review_id = $2
		ORDER BY it.sort_key, it.user_id`, projections.PGID(ws), projections.PGID(id), atC, atP)
	if err != nil {
		return Review{}, fmt.Errorf("history: review items: %w", err)
	}
	defer rows.Close()
	people := newPeople()
	items := make([]ReviewItem, 0, r.items)
	for rows.Next() {
		var (
			user, grantedBy, decidedBy     pgtype.UUID
			email, role, statusAtStart, st string
			name, decision, newRole, note  pgtype.Text
			grantedAt, login, decidedAt    pgtype.Timestamptz
			dormant                        bool
		)
		if err := rows.Scan(&user, &email, &name, &role, &statusAtStart, &grantedBy, &grantedAt, &login, &dormant,
			&decision, &newRole, &note, &decidedBy, &decidedAt, &st); err != nil {
			return Review{}, fmt.Errorf("history: review items: %w", err)
		}
		it := ReviewItem{
			UserID: user.Bytes, Erased: email == "", Role: domain.Role(role), Status: st, StatusAtStart: domain.Status(statusAtStart),
			GrantedBy: people.ask(grantedBy), GrantedAt: timePtr(grantedAt), LastLoginAt: timePtr(login), Dormant: dormant,
			Decision: textPtr(decision), DecidedBy: people.ask(decidedBy), DecidedAt: timePtr(decidedAt), Comment: textPtr(note),
		}
		if !it.Erased {
			display := email
			if name.Valid {
				display = name.String
			}
			it.Email, it.DisplayName = &email, &display
		}
		if newRole.Valid {
			nr := domain.Role(newRole.String)
			it.NewRole = &nr
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return Review{}, fmt.Errorf("history: review items: %w", err)
	}
	rows.Close()
	r.startedP, r.doneByP = people.ask(r.startedBy), people.ask(r.doneBy)
	if err := people.load(ctx, q.db, ws); err != nil {
		return Review{}, err
	}
	return Review{ReviewHead: r.head(), Items: items, CompletedPosition: r.completedPosition, CompletedEventID: r.eventID.Bytes}, nil
}

func textPtr(t pgtype.Text) *string {
	if !t.Valid {
		return nil
	}
	s := t.String
	return &s
}

// people gathers the persons a read shows and fills them in with one query
// (load): each is the person's latest interval in the workspace.
type people struct {
	byID map[uuid.UUID]*Person
	ids  []uuid.UUID
}

func newPeople() *people { return &people{byID: make(map[uuid.UUID]*Person)} }

// ask answers the Person of id, filled in by load; nil for no one (the
// system).
func (p *people) ask(id pgtype.UUID) *Person {
	if !id.Valid {
		return nil
	}
	if x, ok := p.byID[id.Bytes]; ok {
		return x
	}
	x := &Person{UserID: id.Bytes}
	p.byID[id.Bytes] = x
	p.ids = append(p.ids, id.Bytes)
	return x
}

func (p *people) load(ctx context.Context, db DB, ws uuid.UUID) error {
	if len(p.ids) == 0 {
		return nil
	}
	rows, err := db.Query(ctx, `SELECT k.id, i.email, i.name FROM unnest($2::uuid[]) AS k(id)
		CROSS JOIN LATERAL (
			SELECT email, name FROM membership_intervals
			WHERE workspace_id = $1 AND user_id = k.id
			ORDER BY valid_from_commit DESC, valid_from_prepare DESC LIMIT 1
		) i`, projections.PGID(ws), projections.PGIDs(p.ids))
	if err != nil {
		return fmt.Errorf("history: people: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id pgtype.UUID
		var email string
		var name pgtype.Text
		if err := rows.Scan(&id, &email, &name); err != nil {
			return fmt.Errorf("history: people: %w", err)
		}
		x := p.byID[id.Bytes]
		if email == "" {
			x.Erased = true
			continue
		}
		x.Email, x.Name = &email, textPtr(name)
	}
	return rows.Err()
}
