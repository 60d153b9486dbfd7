package audit_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections/audit"
)

// TestSameDivergenceComparesValuesNotText: two divergence errors that
// differ only past the workspaces Error names read the same, yet are not
// the same divergence; the very same divergences are.
func TestSameDivergenceComparesValuesNotText(t *testing.T) {
	t.Parallel()
	var ds []audit.Divergence
	for i := range 11 {
		ds = append(ds, audit.Divergence{WorkspaceID: uuid.New(), Seq: int64(i), LiveHash: "live", RebuiltHash: "rebuilt"})
	}
	accepted := &audit.DivergenceError{Divergences: ds}
	other := &audit.DivergenceError{Divergences: append(ds[:10:10], audit.Divergence{WorkspaceID: uuid.New(), Seq: 99})}
	if accepted.Error() != other.Error() {
		t.Fatalf("the errors' texts differ; the test wants them cut short alike:\n%s\n%s", accepted, other)
	}
	if other.SameAs(accepted) {
		t.Errorf("a divergence in another workspace counts as the one accepted")
	}
	if again := (&audit.DivergenceError{Divergences: append([]audit.Divergence(nil), ds...)}); !again.SameAs(accepted) {
		t.Errorf("the very same divergences do not count as the one accepted")
	}
}
