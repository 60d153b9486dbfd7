package memberships

import (
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
)

// TestEveryAppliedEventHasACase: applyEvent has a case for every event type
// the projection declares it applies.
func TestEveryAppliedEventHasACase(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		ev := projections.WorkspaceEvent{RecordedEvent: &domain.RecordedEvent{Envelope: domain.Envelope{Event: e}}}
		return applyEvent(make(map[key]*change), make(map[uuid.UUID]string), ev)
	})
	if len(missing) > 0 {
		t.Errorf("applyEvent has no case for %v, which the memberships projection applies", missing)
	}
}
