package domain_test

import (
	"testing"

	"github.com/usersd/usersd/domain"
)

func removeForDeletion(target person) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.RemoveForDeletion(target.id) }
}

func TestRemoveForDeletion(t *testing.T) {
	t.Parallel()
	deleted := func(e domain.MemberRemoved) domain.MemberRemoved { e.Reason = domain.ReasonAccountDeleted; return e }
	withdrawn := func(e domain.InvitationRevoked) domain.InvitationRevoked {
		e.Reason = domain.ReasonAccountDeleted
		return e
	}
	runSpecs(t, []spec{
		{
			name:  "a member is removed with the deletion's reason",
			given: team(),
			when:  removeForDeletion(editor),
			then:  evs(deleted(removed(editor, domain.RoleEditor))),
			check: func(t *testing.T, w *domain.Workspace) { wantGone(t, w, editor) },
		},
		{
			name:  "a suspended member is removed",
			given: evs(team(), suspended(monitor, domain.RoleMonitor)),
			when:  removeForDeletion(monitor),
			then:  evs(deleted(removed(monitor, domain.RoleMonitor))),
		},
		{
			name:  "a pending invitation is revoked with the deletion's reason",
			given: evs(team(), invited(9, nora, domain.RoleEditor)),
			when:  removeForDeletion(nora),
			then:  evs(withdrawn(revoked(9, nora, domain.RoleEditor))),
			check: func(t *testing.T, w *domain.Workspace) { wantGone(t, w, nora) },
		},
		{
			name:  "an expired invitation is revoked too",
			given: evs(team(), invited(9, nora, domain.RoleEditor), expired(9, nora, t0)),
			when:  removeForDeletion(nora),
			then:  evs(withdrawn(revoked(9, nora, domain.RoleEditor))),
		},
		{
			name:  "one of two active Admins is removed",
			given: teamWithAdmin2(),
			when:  removeForDeletion(owner),
			then:  evs(deleted(removed(owner, domain.RoleAdmin))),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 1) },
		},
		{name: "the last active Admin is refused", given: team(), when: removeForDeletion(owner), wantErr: domain.CodeLastAdmin},
		{name: "a suspended Admin does not count", given: oneActiveOneSuspendedAdmin(), when: removeForDeletion(owner), wantErr: domain.CodeLastAdmin},
		{name: "someone who is not here records nothing", given: team(), when: removeForDeletion(outsider), then: nil},
		{name: "someone removed before records nothing", given: evs(team(), removed(editor, domain.RoleEditor)), when: removeForDeletion(editor), then: nil},
		{name: "a workspace that does not exist records nothing", given: nil, when: removeForDeletion(editor), then: nil},
	})
}

func TestCheckRemovalForDeletionRecordsNothing(t *testing.T) {
	t.Parallel()
	w := replayed(team())
	if got := domain.ErrorCode(w.CheckRemovalForDeletion(owner.id)); got != domain.CodeLastAdmin {
		t.Fatalf("the last Admin: got code %q, want %q", got, domain.CodeLastAdmin)
	}
	if err := w.CheckRemovalForDeletion(editor.id); err != nil {
		t.Fatalf("an Editor: got %v, want nil", err)
	}
	if n := len(w.Pending()); n != 0 {
		t.Fatalf("recorded %d events, want none", n)
	}
}
