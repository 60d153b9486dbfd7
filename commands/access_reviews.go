package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// StartAccessReview opens an access review over the workspace's membership
// as it stands (members, suspended ones and pending invitations).
type StartAccessReview struct {
	WorkspaceID uuid.UUID
	Name        string
	Meta        Meta
}

// StartAccessReviewResult is the new review: its id, how many people it
// holds, and the position of its start, which is also the position its
// population is frozen at.
type StartAccessReviewResult struct {
	ReviewID uuid.UUID
	Items    int
	Position domain.Position
}

type StartAccessReviewHandler struct{ w writer }

func NewStartAccessReviewHandler(repo WorkspaceRepository, clock Clock, ids IDs) StartAccessReviewHandler {
	return StartAccessReviewHandler{newWriter(repo, clock, ids)}
}

func (h StartAccessReviewHandler) Handle(ctx context.Context, cmd StartAccessReview) (StartAccessReviewResult, error) {
	id, now := h.w.ids.NewID(), h.w.clock.Now()
	var items int
	pos, err := h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		items = 0
		if err := w.StartAccessReview(cmd.Meta.Actor.UserID, id, cmd.Name, now); err != nil {
			return err
		}
		items = w.MemberCount()
		return nil
	})
	if err != nil {
		return StartAccessReviewResult{}, err
	}
	return StartAccessReviewResult{ReviewID: id, Items: items, Position: pos}, nil
}

// DecideAccessReviewItem decides on one person of an open review: keep,
// change_role (Role) or revoke, with an optional comment. A change or a
// revocation runs the ordinary decision in the same append; every event it
// records has the review's id as its causation.
type DecideAccessReviewItem struct {
	WorkspaceID uuid.UUID
	ReviewID    uuid.UUID
	UserID      uuid.UUID
	Decision    string
	Role        string
	Comment     string
	Meta        Meta
}

type DecideAccessReviewItemHandler struct{ w writer }

func NewDecideAccessReviewItemHandler(repo WorkspaceRepository, clock Clock, ids IDs) DecideAccessReviewItemHandler {
	return DecideAccessReviewItemHandler{newWriter(repo, clock, ids)}
}

func (h DecideAccessReviewItemHandler) Handle(ctx context.Context, cmd DecideAccessReviewItem) (domain.Position, error) {
	var role domain.Role
	if cmd.Role != "" {
		r, err := domain.ParseRole(cmd.Role)
		if err != nil {
			return domain.Position{}, err
		}
		role = r
	}
	m := cmd.Meta
	m.CausationID = cmd.ReviewID.String()
	return h.w.updateAs(ctx, cmd.WorkspaceID, m, func(w *domain.Workspace) error {
		return w.DecideAccessReviewItem(m.Actor.UserID, cmd.ReviewID, cmd.UserID, domain.ReviewDecision(cmd.Decision), role, cmd.Comment)
	})
}

// CompleteAccessReview closes a review whose every item is decided.
type CompleteAccessReview struct {
	WorkspaceID uuid.UUID
	ReviewID    uuid.UUID
	Meta        Meta
}

type CompleteAccessReviewHandler struct{ w writer }

func NewCompleteAccessReviewHandler(repo WorkspaceRepository, clock Clock, ids IDs) CompleteAccessReviewHandler {
	return CompleteAccessReviewHandler{newWriter(repo, clock, ids)}
}

func (h CompleteAccessReviewHandler) Handle(ctx context.Context, cmd CompleteAccessReview) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.CompleteAccessReview(cmd.Meta.Actor.UserID, cmd.ReviewID)
	})
}
