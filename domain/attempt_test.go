package domain_test

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

// NextAttempt tells the command side which attempt a resend will record, so
// it can derive that attempt's link secret before deciding.
func TestNextAttempt(t *testing.T) {
	t.Parallel()
	w := domain.NewWorkspace(wsID)
	w.Replay(evs(team(), invited(20, nora, domain.RoleEditor))...)
	id, n, err := w.NextAttempt(nora.id)
	if err != nil || id != invID(20) || n != domain.FirstAttempt+1 {
		t.Fatalf("NextAttempt after the invitation: got %s, %d, %v; want %s, %d, nil", id, n, err, invID(20), domain.FirstAttempt+1)
	}
	w.Replay(resent(20, nora, 2, 30, owner, t0))
	if _, n, _ = w.NextAttempt(nora.id); n != 3 {
		t.Errorf("NextAttempt after one resend: got %d, want 3", n)
	}
	if _, _, err := w.NextAttempt(owner.id); domain.ErrorCode(err) != domain.CodeNotInvited {
		t.Errorf("NextAttempt of an active member: got %v, want code %q", err, domain.CodeNotInvited)
	}
	if _, _, err := w.NextAttempt(ned.id); domain.ErrorCode(err) != domain.CodeUserNotFound {
		t.Errorf("NextAttempt of someone unknown: got %v, want code %q", err, domain.CodeUserNotFound)
	}
}
