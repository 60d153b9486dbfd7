package audit

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// TestEveryAppliedEventIsDescribed: describe has a case for every event
// type the projection declares it applies, so none stops the projection.
func TestEveryAppliedEventIsDescribed(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		_, ok := describeEvent(e)
		return ok
	})
	if len(missing) > 0 {
		t.Errorf("describe has no case for %v, which the audit projection applies", missing)
	}
}
