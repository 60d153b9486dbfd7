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

// domain.Authorize answers from the membership alone, as the aggregate
// (which asks it) and the HTTP reads (with the memberships read model's row)
// need: a stranger or an invitee learns nothing, a suspended member is told
// so, and a role that lacks the permission is named.
func TestAuthorizeFromTheMembershipAlone(t *testing.T) {
	t.Parallel()
	member := func(r domain.Role, s domain.Status) *domain.Member {
		return &domain.Member{UserID: uuid.New(), Role: r, Status: s}
	}
	for _, c := range []struct {
		name string
		m    *domain.Member
		perm domain.Permission
		want string // the error's text, "" for none
	}{
		{"no membership", nil, domain.PermUseInbox, "workspace_not_found: workspace not found"},
		{"an invitation", member(domain.RoleAdmin, domain.StatusInvited), domain.PermUseInbox, "workspace_not_found: workspace not found"},
		{"suspended", member(domain.RoleAdmin, domain.StatusSuspended), domain.PermUseInbox, "member_suspended: your access to this workspace is suspended"},
		{"a role without it", member(domain.RoleEditor, domain.StatusActive), domain.PermManageUsers, "not_allowed: the Editor role does not allow this"},
		{"a role with it", member(domain.RoleManager, domain.StatusActive), domain.PermInviteUsers, ""},
		{"the Admin", member(domain.RoleAdmin, domain.StatusActive), domain.PermAdministerSystem, ""},
	} {
		err := domain.Authorize(c.m, c.perm)
		if got := errMessage(err); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func errMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
