package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// EmailOutcome is how the e-mail of one attempt went.
type EmailOutcome struct {
	InvitationID uuid.UUID
	Attempt      int
	// Failure is empty when the e-mail was sent, else why it failed for good.
	Failure string
}

// RecordEmailOutcomes records how the e-mails of invitation attempts of one
// workspace went, in one append: the mailer batches them, so that a batch
// of invitations costs one write of outcomes, not one per address. The
// system acts. An outcome for a replaced or closed invitation, or for an
// attempt whose outcome is recorded already, records nothing.
type RecordEmailOutcomes struct {
	WorkspaceID uuid.UUID
	Outcomes    []EmailOutcome
	Meta        Meta
}

type RecordEmailOutcomesHandler struct{ w writer }

func NewRecordEmailOutcomesHandler(repo WorkspaceRepository, clock Clock, ids IDs) RecordEmailOutcomesHandler {
	return RecordEmailOutcomesHandler{newWriter(repo, clock, ids)}
}

func (h RecordEmailOutcomesHandler) Handle(ctx context.Context, cmd RecordEmailOutcomes) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, system(cmd.Meta), func(w *domain.Workspace) error {
		for _, o := range cmd.Outcomes {
			if o.Failure == "" {
				w.RecordEmailSent(o.InvitationID, o.Attempt)
			} else {
				w.RecordEmailFailed(o.InvitationID, o.Attempt, o.Failure)
			}
		}
		return nil
	})
}
