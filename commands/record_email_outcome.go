package commands

import (
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

func (c RecordEmailOutcomes) target() (uuid.UUID, Meta) { return c.WorkspaceID, system(c.Meta) }

type RecordEmailOutcomesHandler = workspaceHandler[RecordEmailOutcomes, domain.Position]

func NewRecordEmailOutcomesHandler(repo WorkspaceRepository, clock Clock, ids IDs) RecordEmailOutcomesHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd RecordEmailOutcomes) error {
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
