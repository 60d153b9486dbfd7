package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

func acceptedNow(n int, p person, name string, role domain.Role) domain.InvitationAccepted {
	e := acceptedAt(n, p, role, t0)
	e.Name = name
	return e
}

func TestAcceptHappyPath(t *testing.T) {
	t.Parallel()
	given := evs(team(), invited(20, nora, domain.RoleEditor))
	var got domain.Member
	spec{
		given: given,
		when: func(w *domain.Workspace) error {
			var err error
			got, err = w.Accept(tok(20), "  Nora New ", t0)
			return err
		},
		then: evs(acceptedNow(20, nora, "Nora New", domain.RoleEditor)),
		check: func(t *testing.T, w *domain.Workspace) {
			want := domain.Member{UserID: nora.id, Email: nora.email, Name: "Nora New", Role: domain.RoleEditor, Status: domain.StatusActive}
			wantMember(t, w, want)
			if d := fieldDiff(got, want); len(d) > 0 {
				t.Fatalf("Accept answered:\n  %s", strings.Join(d, "\n  "))
			}
			wantLink(t, w, tok(20), t0, domain.CodeInvitationUsed)
			if _, err := w.Login(nora.id, t0); err != nil {
				t.Fatalf("Login after accepting: got %v, want success", err)
			}
			wantActiveAdmins(t, w, 1)
			if _, ok := w.NextExpiry(); ok {
				t.Fatalf("NextExpiry: got one, want none once the only invitation is accepted")
			}
		},
	}.run(t)
}

func TestAccept(t *testing.T) {
	t.Parallel()
	pending := evs(team(), invited(20, nora, domain.RoleEditor))
	// byManager is an invitation of Nora the Manager sent an hour ago.
	byManager := func(role domain.Role) []domain.Event {
		return evs(team(), invitedAt(20, nora, role, manager, domain.RoleManager, t0.Add(-time.Hour)))
	}
	expiresAt := t0.Add(-time.Hour + week)
	runSpecs(t, []spec{
		{
			name:  "accepted as Admin counts as an active Admin",
			given: evs(team(), invited(20, nora, domain.RoleAdmin)),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 2) },
		},
		{
			name:  "a nanosecond before expiry",
			given: pending,
			when:  accept(tok(20), "Nora", expiresAt.Add(-time.Nanosecond)),
			then:  evs(acceptedAt(20, nora, domain.RoleEditor, expiresAt.Add(-time.Nanosecond))),
		},
		{
			name:  "name of 200 characters",
			given: pending,
			when:  accept(tok(20), strings.Repeat("ñ", 200), t0),
			then:  evs(acceptedNow(20, nora, strings.Repeat("ñ", 200), domain.RoleEditor)),
		},
		{
			name:  "resent link",
			given: evs(pending, resent(20, nora, 2, 30, owner, t0.Add(-time.Minute))),
			when:  accept(tokWith(20, 30), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleEditor)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantLink(t, w, tokWith(20, 30), t0, domain.CodeInvitationUsed)
			},
		},
		{
			name:  "link of another workspace",
			given: pending,
			when: accept(domain.InvitationToken{WorkspaceID: otherWS, InvitationID: invID(20), Secret: secret(20)},
				"Nora", t0),
			wantErr: domain.CodeInvalidToken,
		},
		{
			name:    "garbage link",
			given:   pending,
			when:    accept(domain.InvitationToken{WorkspaceID: wsID, InvitationID: uuid.MustParse("0c000000-0000-4000-8000-999999999999"), Secret: secret(1)}, "Nora", t0),
			wantErr: domain.CodeInvalidToken,
		},
		{name: "zero link", given: pending, when: accept(domain.InvitationToken{}, "Nora", t0), wantErr: domain.CodeInvalidToken},
		{name: "workspace does not exist", when: accept(tok(20), "Nora", t0), wantErr: domain.CodeInvalidToken},
		{name: "expired at its time", given: pending, when: accept(tok(20), "Nora", expiresAt), wantErr: domain.CodeInvitationExpired},
		{name: "expired long ago", given: pending, when: accept(tok(20), "Nora", t0.Add(30*day)), wantErr: domain.CodeInvitationExpired},
		{
			name:    "marked expired",
			given:   evs(team(), invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-8*day)), expired(20, nora, t0.Add(-day))),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInvitationExpired,
		},
		{name: "used", given: evs(pending, acceptedNow(20, nora, "Nora", domain.RoleEditor)), when: accept(tok(20), "Nora", t0), wantErr: domain.CodeInvitationUsed},
		{
			name:    "used, then the member was removed",
			given:   evs(pending, acceptedNow(20, nora, "Nora", domain.RoleEditor), removed(nora, domain.RoleEditor)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInvitationUsed,
		},
		{name: "revoked", given: evs(pending, revoked(20, nora, domain.RoleEditor)), when: accept(tok(20), "Nora", t0), wantErr: domain.CodeInvitationRevoked},
		{name: "replaced by a resend", given: evs(pending, resent(20, nora, 2, 30, owner, t0)), when: accept(tok(20), "Nora", t0), wantErr: domain.CodeInvitationRevoked},
		{name: "forged secret for a live invitation", given: pending, when: accept(tokWith(20, 99), "Nora", t0), wantErr: domain.CodeInvalidToken},
		{name: "forged secret after a resend", given: evs(pending, resent(20, nora, 2, 30, owner, t0)), when: accept(tokWith(20, 99), "Nora", t0), wantErr: domain.CodeInvalidToken},
		{
			name: "replaced by a new invitation after expiry",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-8*day)),
				invitedAt(21, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-time.Hour)),
			),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInvitationRevoked,
		},
		{
			name:  "Manager's invitation",
			given: byManager(domain.RoleEditor),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleEditor)),
		},
		{
			name:    "inviter demoted to Editor",
			given:   evs(byManager(domain.RoleEditor), roleChanged(manager, domain.RoleManager, domain.RoleEditor, owner)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name:    "inviter removed",
			given:   evs(byManager(domain.RoleEditor), removed(manager, domain.RoleManager)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name:    "inviter suspended",
			given:   evs(byManager(domain.RoleEditor), suspended(manager, domain.RoleManager)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name:  "inviter suspended and reactivated",
			given: evs(byManager(domain.RoleEditor), suspended(manager, domain.RoleManager), reactivated(manager, domain.RoleManager)),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleEditor)),
		},
		{
			name:    "inviter removed and invited again, not yet joined",
			given:   evs(byManager(domain.RoleEditor), removed(manager, domain.RoleManager), invited(21, manager, domain.RoleManager)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name:  "Manager-invited Admin while the setting is on",
			given: byManager(domain.RoleAdmin),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) { wantActiveAdmins(t, w, 2) },
		},
		{
			name:    "Manager-invited Admin after the setting was turned off",
			given:   evs(byManager(domain.RoleAdmin), settingsChanged(false)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name:  "Manager-invited Editor after the setting was turned off",
			given: evs(byManager(domain.RoleEditor), settingsChanged(false)),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleEditor)),
		},
		{
			name:  "Admin-invited Admin whose inviter is now a Manager, setting on",
			given: evs(teamWithAdmin2(), invitedAt(20, nora, domain.RoleAdmin, admin2, domain.RoleAdmin, t0.Add(-time.Hour)), roleChanged(admin2, domain.RoleAdmin, domain.RoleManager, owner)),
			when:  accept(tok(20), "Nora", t0),
			then:  evs(acceptedNow(20, nora, "Nora", domain.RoleAdmin)),
		},
		{
			name: "Admin-invited Admin whose inviter is now a Manager, setting off",
			given: evs(teamWithAdmin2(), invitedAt(20, nora, domain.RoleAdmin, admin2, domain.RoleAdmin, t0.Add(-time.Hour)),
				roleChanged(admin2, domain.RoleAdmin, domain.RoleManager, owner), settingsChanged(false)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name: "role changed by an Admin: the Manager who invited no longer matters",
			given: evs(byManager(domain.RoleEditor),
				roleChanged(nora, domain.RoleEditor, domain.RoleMonitor, owner),
				removed(manager, domain.RoleManager)),
			when: accept(tok(20), "Nora", t0),
			then: evs(acceptedNow(20, nora, "Nora", domain.RoleMonitor)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, nora, domain.RoleMonitor, domain.StatusActive)
			},
		},
		{
			name: "role raised to Admin by an Admin while Managers may not grant it",
			given: evs(byManager(domain.RoleEditor), settingsChanged(false),
				roleChanged(nora, domain.RoleEditor, domain.RoleAdmin, owner)),
			when: accept(tok(20), "Nora", t0),
			then: evs(acceptedNow(20, nora, "Nora", domain.RoleAdmin)),
		},
		{
			name: "role changed by an Admin who was demoted since",
			given: evs(teamWithAdmin2(),
				invitedAt(20, nora, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-time.Hour)),
				roleChanged(nora, domain.RoleEditor, domain.RoleMonitor, admin2),
				roleChanged(admin2, domain.RoleAdmin, domain.RoleEditor, owner)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{
			name: "role changed by an Admin who was removed since",
			given: evs(teamWithAdmin2(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-time.Hour)),
				roleChanged(nora, domain.RoleEditor, domain.RoleManager, admin2),
				removed(admin2, domain.RoleAdmin)),
			when:    accept(tok(20), "Nora", t0),
			wantErr: domain.CodeInviterCannotGrant,
		},
		{name: "empty name", given: pending, when: accept(tok(20), "", t0), wantErr: domain.CodeInvalidName},
		{name: "blank name", given: pending, when: accept(tok(20), " \t\n ", t0), wantErr: domain.CodeInvalidName},
		{name: "name of 201 characters", given: pending, when: accept(tok(20), strings.Repeat("ñ", 201), t0), wantErr: domain.CodeInvalidName},
		{name: "NUL in name", given: pending, when: accept(tok(20), "Nora\x00Evil", t0), wantErr: domain.CodeInvalidName},
		{name: "newline in name", given: pending, when: accept(tok(20), "Nora\nBcc: x@example.com", t0), wantErr: domain.CodeInvalidName},
		{name: "tab in name", given: pending, when: accept(tok(20), "No\tra", t0), wantErr: domain.CodeInvalidName},
		{name: "escape in name", given: pending, when: accept(tok(20), "Nora\x1b[31m", t0), wantErr: domain.CodeInvalidName},
	})
}

// TestShowInvitation is the GET of a link: it checks the link as Accept
// does but records nothing.
func TestShowInvitation(t *testing.T) {
	t.Parallel()
	w := replayed(evs(team(), invited(20, nora, domain.RoleManager)))
	m, err := w.Invitation(tok(20), t0)
	if err != nil {
		t.Fatalf("Invitation(link): got error %v, want the invitation", err)
	}
	if m.UserID != nora.id || m.Email != nora.email || m.Role != domain.RoleManager || m.Status != domain.StatusInvited || m.Invitation == nil || m.Invitation.ID != invID(20) {
		t.Fatalf("Invitation(link): got %+v, want Nora's pending invitation %s as Manager", m, invID(20))
	}
	if len(w.Pending()) != 0 {
		t.Fatalf("Invitation(link): recorded %d events, want none", len(w.Pending()))
	}
	wantLink(t, w, tok(20), t0.Add(week), domain.CodeInvitationExpired)
	wantLink(t, w, domain.InvitationToken{WorkspaceID: otherWS, InvitationID: invID(20), Secret: secret(20)}, t0, domain.CodeInvalidToken)
}
