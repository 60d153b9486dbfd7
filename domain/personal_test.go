package domain_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// TestPersonalValuesAreDeclared pins which values of each event identify a
// person, and whose they are: a new field holding an address, a name or
// anything a person wrote must be tagged personal, or it is stored in
// clear and survives the person's erasure.
func TestPersonalValuesAreDeclared(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"WorkspaceCreated":       {"ownerEmail", "ownerName"},
		"UserInvited":            {"email"},
		"InvitationResent":       {"email"},
		"InvitationRevoked":      {"email"},
		"InvitationExpired":      {"email"},
		"InvitationAccepted":     {"email", "name"},
		"InvitationEmailFailed":  {"reason"},
		"RoleChanged":            {"email"},
		"RoleGrantExpired":       {"email"},
		"RoleGrantExpiryRefused": {"email"},
		"MemberRemoved":          {"email"},
		"MemberSuspended":        {"email"},
		"MemberReactivated":      {"email"},
		"AccountRegistered":      {"email"},
		// What an Admin wrote about the person under review.
		"AccessReviewItemDecided": {"comment"},
	}
	for _, e := range sampleEvents() {
		name := domain.EventName(e)
		var got []string
		for _, p := range domain.Personal(e) {
			got = append(got, p.Field)
			if p.Subject == uuid.Nil || p.Value == "" {
				t.Errorf("%s.%s: subject %v, value %q; want the sample's person and value", name, p.Field, p.Subject, p.Value)
			}
		}
		if !reflect.DeepEqual(got, want[name]) {
			t.Errorf("%s: personal values %v, want %v", name, got, want[name])
		}
	}
}

func TestMapPersonalReplacesOnlyPersonalValuesOfACopy(t *testing.T) {
	t.Parallel()
	orig := acceptedAt(20, nora, domain.RoleAdmin, t0)
	got, err := domain.MapPersonal(orig, func(v domain.PersonalValue) (string, error) {
		if v.Subject != nora.id {
			t.Errorf("%s: subject %v, want nora %v", v.Field, v.Subject, nora.id)
		}
		return strings.ToUpper(v.Field) + ":" + v.Value, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a := got.(domain.InvitationAccepted)
	if a.Email != "EMAIL:"+string(nora.email) || a.Name != "NAME:"+orig.Name || a.Role != orig.Role || a.UserID != orig.UserID {
		t.Fatalf("MapPersonal: got %+v", a)
	}
	if orig.Email != string(nora.email) {
		t.Fatalf("MapPersonal changed its argument: %+v", orig)
	}
	if _, err := domain.MapPersonal(struct{}{}, nil); err == nil {
		t.Fatal("MapPersonal of a value that is no event: got no error")
	}
}
