package commands

import (
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

func (c StartAccessReview) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type StartAccessReviewHandler = workspaceHandler[StartAccessReview, StartAccessReviewResult]

func NewStartAccessReviewHandler(repo WorkspaceRepository, clock Clock, ids IDs) StartAccessReviewHandler {
	return newWorkspaceHandler(repo, clock, ids, func(cmd StartAccessReview) (decision[StartAccessReviewResult], error) {
		id, now := ids.NewID(), clock.Now()
		var items int
		return decision[StartAccessReviewResult]{
			decide: func(w *domain.Workspace) error {
				items = 0
				if err := w.StartAccessReview(cmd.Meta.Actor.UserID, id, cmd.Name, now); err != nil {
					return err
				}
				items = w.MemberCount()
				return nil
			},
			answer: func(at domain.Position) StartAccessReviewResult {
				return StartAccessReviewResult{ReviewID: id, Items: items, Position: at}
			},
		}, nil
	})
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

// target names the review as the cause of every event the decision records.
func (c DecideAccessReviewItem) target() (uuid.UUID, Meta) {
	m := c.Meta
	m.CausationID = c.ReviewID.String()
	return c.WorkspaceID, m
}

type DecideAccessReviewItemHandler = workspaceHandler[DecideAccessReviewItem, domain.Position]

func NewDecideAccessReviewItemHandler(repo WorkspaceRepository, clock Clock, ids IDs) DecideAccessReviewItemHandler {
	return newWorkspaceHandler(repo, clock, ids, func(cmd DecideAccessReviewItem) (decision[domain.Position], error) {
		var role domain.Role
		if cmd.Role != "" {
			r, err := domain.ParseRole(cmd.Role)
			if err != nil {
				return decision[domain.Position]{}, err
			}
			role = r
		}
		return atPosition(func(w *domain.Workspace) error {
			return w.DecideAccessReviewItem(cmd.Meta.Actor.UserID, cmd.ReviewID, cmd.UserID, domain.ReviewDecision(cmd.Decision), role, cmd.Comment)
		}), nil
	})
}

// CompleteAccessReview closes a review whose every item is decided.
type CompleteAccessReview struct {
	WorkspaceID uuid.UUID
	ReviewID    uuid.UUID
	Meta        Meta
}

func (c CompleteAccessReview) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type CompleteAccessReviewHandler = workspaceHandler[CompleteAccessReview, domain.Position]

func NewCompleteAccessReviewHandler(repo WorkspaceRepository, clock Clock, ids IDs) CompleteAccessReviewHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd CompleteAccessReview) error {
		return w.CompleteAccessReview(cmd.Meta.Actor.UserID, cmd.ReviewID)
	})
}
