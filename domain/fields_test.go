package domain_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Adapters name the input an error is about from its Field, never from its
// message: every error about one input carries it.
func TestErrorsNameTheirInput(t *testing.T) {
	t.Parallel()
	spec := func(name, email, ownerName string) func() error {
		return func() error { _, err := domain.ParseWorkspaceSpec(name, email, ownerName); return err }
	}
	accept := func(name string) func() error {
		return func() error {
			w := replayed(evs(team(), invited(20, nora, domain.RoleEditor)))
			_, err := w.Accept(tok(20), name, t0)
			return err
		}
	}
	cases := []struct {
		name  string
		run   func() error
		code  domain.Code
		field string
	}{
		{"workspace name", spec(" ", "o@x.com", "Olga"), domain.CodeInvalidName, "name"},
		{"owner name", spec("Acme", "o@x.com", "\u2067Olga"), domain.CodeInvalidName, "ownerName"},
		{"owner address", spec("Acme", "not an address", "Olga"), domain.CodeInvalidEmail, "ownerEmail"},
		{"invitee name", accept(""), domain.CodeInvalidName, "name"},
		{"role", func() error { _, err := domain.ParseRole("Owner"); return err }, domain.CodeInvalidRole, "role"},
		{"empty batch", func() error { _, err := domain.ParseBatch(" ; "); return err }, domain.CodeEmptyBatch, "emails"},
		{"large batch", func() error {
			var b strings.Builder
			for i := 0; i <= domain.MaxBatch; i++ {
				fmt.Fprintf(&b, "a%d@x.com,", i)
			}
			_, err := domain.ParseBatch(b.String())
			return err
		}, domain.CodeBatchTooLarge, "emails"},
		{"token", func() error { _, err := domain.ParseInvitationToken("abc"); return err }, domain.CodeInvalidToken, "token"},
	}
	for _, c := range cases {
		err := c.run()
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != c.code || de.Field != c.field {
			t.Errorf("%s: got %#v, want code %q about %q", c.name, err, c.code, c.field)
		}
	}
}

// ParseWorkspaceSpec refuses what Create refuses, and what it accepts Create
// takes as it is.
func TestParseWorkspaceSpecAgreesWithCreate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, email, ownerName string }{
		{"  Acme ", " Ada@Example.COM", " Ada "},
		{strings.Repeat("é", 201), "ada@example.com", "Ada"},
		{"Acme", "ada@example.com", "Ad\ufeffa"},
		{"Ac\x07me", "ada@example.com", "Ada"},
	} {
		s, err := domain.ParseWorkspaceSpec(c.name, c.email, c.ownerName)
		w := domain.NewWorkspace(wsID)
		createErr := w.Create(c.name, owner.id, domain.Email(strings.ToLower(strings.TrimSpace(c.email))), c.ownerName, t0)
		if domain.ErrorCode(err) != domain.ErrorCode(createErr) {
			t.Errorf("%q, %q: ParseWorkspaceSpec says %v, Create says %v", c.name, c.ownerName, err, createErr)
		}
		if err != nil {
			continue
		}
		w = domain.NewWorkspace(wsID)
		if err := w.Create(s.Name, owner.id, s.OwnerEmail, s.OwnerName, t0); err != nil {
			t.Fatalf("Create of the spec %+v: %v", s, err)
		}
		got := w.Pending()[0].(domain.WorkspaceCreated)
		if got.Name != s.Name || got.OwnerName != s.OwnerName || got.OwnerEmail != "ada@example.com" {
			t.Errorf("Create changed the spec %+v into %+v", s, got)
		}
	}
}

// domain.Authorize is the rule the aggregate applies: the same answer for
// every kind of member, from the membership alone.
func TestAuthorizeFromTheMembershipAlone(t *testing.T) {
	t.Parallel()
	w := replayed(evs(team(), invited(20, nora, domain.RoleAdmin), suspended(monitor, domain.RoleMonitor)))
	for _, who := range []person{owner, manager, editor, agent, monitor, nora, outsider} {
		for _, perm := range domain.RoleAdmin.Permissions() {
			var m *domain.Member
			if got, ok := w.Member(who.id); ok {
				m = &got
			}
			want := w.Authorize(who.id, perm)
			got := domain.Authorize(m, perm)
			if domain.ErrorCode(got) != domain.ErrorCode(want) || errMessage(got) != errMessage(want) {
				t.Errorf("%s, %s: Authorize says %v, the workspace %v", who.email, perm, got, want)
			}
		}
	}
	if err := domain.Authorize(&domain.Member{UserID: uuid.New(), Role: domain.RoleEditor, Status: domain.StatusActive}, domain.PermManageUsers); err == nil || err.Error() != "not_allowed: the Editor role does not allow this" {
		t.Errorf("an Editor managing users: got %v, want not_allowed naming the role", err)
	}
}

func errMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
