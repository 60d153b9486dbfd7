package domain

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Access reviews. An Admin starts a review; its population is frozen at
// that event: every member, suspended ones and pending invitations included
// (apply takes it from the state, so a replay freezes the same people). An
// Admin decides each item: keep, change the role or revoke. A change or a
// revocation is the ordinary decision (ChangeRole, Remove: the last-Admin
// rule included), recorded in the same append as the item's decision; a
// refusal records neither. An item may be decided again while the review is
// open; the last decision is the one in force. A review completes once every
// item is decided and is immutable afterwards.

// ReviewDecision is what an Admin decided about one person of a review.
type ReviewDecision string

const (
	DecisionKeep       ReviewDecision = "keep"
	DecisionChangeRole ReviewDecision = "change_role"
	DecisionRevoke     ReviewDecision = "revoke"
)

// Limits of access reviews.
const (
	// MaxReviewName bounds a review's name, in characters.
	MaxReviewName = 200
	// MaxReviewComment bounds a decision's comment, in characters: a
	// reason, not a document.
	MaxReviewComment = 1000
	// MaxOpenReviews bounds the reviews open at once in a workspace: each
	// holds its population in the aggregate until it completes.
	MaxOpenReviews = 20
)

// accessReview is a review as the decisions see it.
type accessReview struct {
	name  string
	items int
	// population and decided are nil once the review is completed: nothing
	// decides on them any more.
	population map[uuid.UUID]struct{}
	decided    map[uuid.UUID]ReviewDecision
	completed  bool
}

// ReviewState is what the aggregate knows of a review.
type ReviewState struct {
	Name      string
	Items     int
	Decided   int
	Completed bool
}

// Review returns the state of review id.
func (w *Workspace) Review(id uuid.UUID) (ReviewState, bool) {
	r, ok := w.reviews[id]
	if !ok {
		return ReviewState{}, false
	}
	s := ReviewState{Name: r.name, Items: r.items, Decided: r.items, Completed: r.completed}
	if !r.completed {
		s.Decided = len(r.decided)
	}
	return s, true
}

// InReview reports whether user is in the population of open review id.
func (w *Workspace) InReview(id, user uuid.UUID) bool {
	r, ok := w.reviews[id]
	if !ok {
		return false
	}
	_, in := r.population[user]
	return in
}

// StartAccessReview opens review id over the workspace's membership as it
// stands.
func (w *Workspace) StartAccessReview(actor, id uuid.UUID, name string, now time.Time) error {
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	name, err := cleanText(name, "review's name", "name", MaxReviewName)
	if err != nil {
		return err
	}
	if id == uuid.Nil {
		return newError(CodeInvalidInput, "a review needs an id")
	}
	if _, ok := w.reviews[id]; ok {
		return newError(CodeInvalidInput, "a review with this id exists already")
	}
	if w.openReviews >= MaxOpenReviews {
		return newError(CodeTooManyOpenReviews, "%d access reviews are open; complete one before starting another", w.openReviews)
	}
	w.record(AccessReviewStarted{WorkspaceID: w.id, ReviewID: id, Name: name, Items: len(w.members), StartedAt: now})
	return nil
}

// DecideAccessReviewItem records the decision on user in review id. For
// change_role (role) and revoke it first decides the ordinary change
// (ChangeRole, Remove), whose refusal it answers, recording nothing. A
// revocation of someone who has left meanwhile has nothing to carry out;
// a change of their role is refused as ChangeRole refuses it
// (user_not_found).
func (w *Workspace) DecideAccessReviewItem(actor, id, user uuid.UUID, d ReviewDecision, role Role, comment string) error {
	r, err := authorizedFind(w, actor, PermManageUsers, w.openReview, id)
	if err != nil {
		return err
	}
	if _, ok := r.population[user]; !ok {
		return newError(CodeNotInReview, "this person is not in the review: it covers the people of the workspace when it started")
	}
	comment, err = reviewComment(comment)
	if err != nil {
		return err
	}
	switch d {
	case DecisionKeep, DecisionRevoke:
		if role != "" {
			return fieldError("role", CodeInvalidInput, "a role goes only with the decision change_role")
		}
	case DecisionChangeRole:
		if role == "" {
			return fieldError("role", CodeInvalidInput, "change_role needs the new role")
		}
		if !role.Valid() {
			return fieldError("role", CodeInvalidRole, "unknown role %q", truncate(string(role), 40))
		}
	default:
		return fieldError("decision", CodeInvalidInput, "unknown decision %q: want keep, change_role or revoke", truncate(string(d), 40))
	}
	switch d {
	case DecisionChangeRole:
		if err := w.ChangeRole(actor, user, role); err != nil {
			return err
		}
	case DecisionRevoke:
		if _, here := w.members[user]; here {
			if err := w.Remove(actor, user); err != nil {
				return err
			}
		}
	}
	w.record(AccessReviewItemDecided{
		WorkspaceID: w.id, ReviewID: id, UserID: user, Decision: string(d), NewRole: string(role), Comment: comment,
	})
	return nil
}

// CompleteAccessReview closes review id once every item is decided.
func (w *Workspace) CompleteAccessReview(actor, id uuid.UUID) error {
	r, err := authorizedFind(w, actor, PermManageUsers, w.openReview, id)
	if err != nil {
		return err
	}
	if open := r.items - len(r.decided); open > 0 {
		return newError(CodeReviewIncomplete, "%d of the review's %d items are not decided yet", open, r.items)
	}
	e := AccessReviewCompleted{WorkspaceID: w.id, ReviewID: id, Items: r.items}
	for _, d := range r.decided {
		switch d {
		case DecisionKeep:
			e.Kept++
		case DecisionChangeRole:
			e.Changed++
		case DecisionRevoke:
			e.Revoked++
		}
	}
	w.record(e)
	return nil
}

// openReview finds review id, refusing a completed one.
func (w *Workspace) openReview(id uuid.UUID) (*accessReview, error) {
	r, ok := w.reviews[id]
	if !ok {
		return nil, newError(CodeReviewNotFound, "no such access review in this workspace")
	}
	if r.completed {
		return nil, newError(CodeReviewCompleted, "the review is completed; it can no longer change")
	}
	return r, nil
}

// applyReview folds an access review's event into the state.
func (w *Workspace) applyReview(e Event) {
	switch e := e.(type) {
	case AccessReviewStarted:
		pop := make(map[uuid.UUID]struct{}, len(w.members))
		for id := range w.members {
			pop[id] = struct{}{}
		}
		w.reviews[e.ReviewID] = &accessReview{name: e.Name, items: len(pop), population: pop, decided: make(map[uuid.UUID]ReviewDecision)}
		w.openReviews++
	case AccessReviewItemDecided:
		if r := w.reviews[e.ReviewID]; r != nil && !r.completed {
			r.decided[e.UserID] = ReviewDecision(e.Decision)
		}
	case AccessReviewCompleted:
		if r := w.reviews[e.ReviewID]; r != nil && !r.completed {
			r.completed, r.population, r.decided = true, nil, nil
			w.openReviews--
		}
	}
}

// reviewComment cleans a decision's comment: trimmed, line breaks kept (as
// "\n"), and refused when too long or when it holds characters a reader
// cannot see or that change how the text around them reads. Empty is none.
func reviewComment(s string) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	switch {
	case s == "":
		return "", nil
	case len(s) > 4*MaxReviewComment || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxReviewComment:
		if !utf8.ValidString(s) {
			return "", fieldError("comment", CodeInvalidInput, "the comment is not valid UTF-8")
		}
		return "", fieldError("comment", CodeInvalidInput, "the comment is longer than %d characters", MaxReviewComment)
	case strings.ContainsAny(s, "\r\t"):
		return "", fieldError("comment", CodeInvalidInput, "the comment contains control characters")
	}
	if r, kind := hiddenRune(s, true); kind != "" {
		return "", fieldError("comment", CodeInvalidInput, "the comment contains %s (%U)", kind, r)
	}
	return s, nil
}
