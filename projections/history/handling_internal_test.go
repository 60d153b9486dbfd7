package history

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// TestEveryAppliedEventHasACase: applyEvent has a case for every workspace
// event the projection applies, and Apply handles AccountDeleted, the one
// event of no workspace it applies.
func TestEveryAppliedEventHasACase(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		if _, ok := domain.WorkspaceOf(e); !ok {
			_, deleted := e.(domain.AccountDeleted)
			return deleted
		}
		return applyEvent(make(map[key]*row), &domain.RecordedEvent{Envelope: domain.Envelope{Event: e}})
	})
	if len(missing) > 0 {
		t.Errorf("applyEvent has no case for %v, which the history projection applies", missing)
	}
}
