package userlist

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// TestEveryAppliedEventHasACase: apply has a case for every event type the
// projection declares it applies.
func TestEveryAppliedEventHasACase(t *testing.T) {
	t.Parallel()
	missing := handling.Uncovered(func(e domain.Event) bool {
		// The zero event is about the zero key, whose row Apply would have
		// prepared.
		b := &batch{members: map[key]*memberRow{{}: {}}, logins: make(map[key]*login)}
		return b.apply(&domain.RecordedEvent{Envelope: domain.Envelope{Event: e}}, &workspace{})
	})
	if len(missing) > 0 {
		t.Errorf("apply has no case for %v, which the user list projection applies", missing)
	}
}
