package memberships

import (
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// TestEveryAppliedEventHasACase: applyEvent (applyAccount for events of no
// workspace) has a case for every event type
// the projection declares it applies.
func TestEveryAppliedEventHasACase(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		rec := &domain.RecordedEvent{Envelope: domain.Envelope{Event: e}}
		if _, ok := domain.WorkspaceOf(e); !ok {
			var order []uuid.UUID
			return applyAccount(make(map[uuid.UUID]*account), &order, rec)
		}
		return applyEvent(make(map[key]*change), make(map[uuid.UUID]string), projections.WorkspaceEvent{RecordedEvent: rec})
	})
	if len(missing) > 0 {
		t.Errorf("applyEvent has no case for %v, which the memberships projection applies", missing)
	}
}
