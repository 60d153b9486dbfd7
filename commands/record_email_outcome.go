package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// RecordEmailOutcome records how the e-mail of one invitation attempt went.
// The mailer sends it; an outcome for a replaced or closed invitation
// records nothing.
type RecordEmailOutcome struct {
	WorkspaceID  uuid.UUID
	InvitationID uuid.UUID
	Attempt      int
	// Failure is empty when the e-mail was sent, else why it failed for good.
	Failure string
	Meta    Meta
}

type RecordEmailOutcomeHandler struct{ d Deps }

func NewRecordEmailOutcomeHandler(d Deps) RecordEmailOutcomeHandler {
	d.check()
	return RecordEmailOutcomeHandler{d}
}

func (h RecordEmailOutcomeHandler) Handle(ctx context.Context, cmd RecordEmailOutcome) (domain.Position, error) {
	cmd.Meta.Actor = domain.Actor{System: true}
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		if cmd.Failure == "" {
			w.RecordEmailSent(cmd.InvitationID, cmd.Attempt)
		} else {
			w.RecordEmailFailed(cmd.InvitationID, cmd.Attempt, cmd.Failure)
		}
		return nil
	})
}

// EmailOutcome is how the e-mail of one attempt went.
type EmailOutcome struct {
	InvitationID uuid.UUID
	Attempt      int
	// Failure is empty when the e-mail was sent, else why it failed for good.
	Failure string
}

// RecordEmailOutcomes records many outcomes of one workspace in one append:
// the mailer batches them, so that a batch of invitations costs one write
// of outcomes, not one per address.
type RecordEmailOutcomes struct {
	WorkspaceID uuid.UUID
	Outcomes    []EmailOutcome
	Meta        Meta
}

type RecordEmailOutcomesHandler struct{ d Deps }

func NewRecordEmailOutcomesHandler(d Deps) RecordEmailOutcomesHandler {
	d.check()
	return RecordEmailOutcomesHandler{d}
}

func (h RecordEmailOutcomesHandler) Handle(ctx context.Context, cmd RecordEmailOutcomes) (domain.Position, error) {
	cmd.Meta.Actor = domain.Actor{System: true}
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
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
