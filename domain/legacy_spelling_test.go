package domain_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// TestStoredSpellingsKeepTheirMembers: events keep an address as it was
// normalised when they were written. Before the IDNA rules an A-label
// domain or decomposed letters were kept as typed; such a member is still
// found under the canonical spelling, so inviting them again is
// already_member, not a second membership.
func TestStoredSpellingsKeepTheirMembers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ stored, typed string }{
		{"jane@xn--mnchen-3ya.de", "Jane@München.de"},
		{"jo\u0308rg@example.com", "jörg@example.com"},
		{"jörg@mu\u0308nchen.de", "JÖRG@xn--mnchen-3ya.de"},
	} {
		old := person{uuid.MustParse("0b000000-0000-4000-8000-00000000c001"), domain.Email(c.stored), "Old"}
		w := replayed(evs(team(), joined(9, old, domain.RoleEditor)))
		b := inviteBatch(owner, domain.RoleEditor, c.typed, 10)
		if need := w.NeedAccounts(b.Entries); len(need) != 0 {
			t.Errorf("stored %q, typed %q: NeedAccounts %q, want none", c.stored, c.typed, need)
		}
		res, err := w.Invite(b)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Outcome != domain.OutcomeAlreadyMember || res[0].UserID != old.id || len(w.Pending()) != 0 {
			t.Errorf("stored %q, typed %q: got %+v and %d events, want already_member %s and none", c.stored, c.typed, res[0], len(w.Pending()), old.id)
		}
		canonical, _ := domain.NormalizeEmail(c.typed)
		if m, ok := w.MemberByEmail(canonical); !ok || m.UserID != old.id {
			t.Errorf("MemberByEmail(%q): got %v %v, want the member stored as %q", canonical, m.UserID, ok, c.stored)
		}
	}
}

// TestAnAccountAlreadyHereIsNeverInvitedAgain: whatever address an account
// was resolved for, a user id the workspace already has is that member.
func TestAnAccountAlreadyHereIsNeverInvitedAgain(t *testing.T) {
	t.Parallel()
	w := replayed(team())
	b := inviteBatch(owner, domain.RoleEditor, "eve.other@example.com", 10)
	b.UserIDs = map[domain.Email]uuid.UUID{"eve.other@example.com": editor.id}
	res, err := w.Invite(b)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != domain.OutcomeAlreadyMember || res[0].UserID != editor.id || len(w.Pending()) != 0 {
		t.Fatalf("got %+v and %d events, want already_member %s and no event", res[0], len(w.Pending()), editor.id)
	}
}
