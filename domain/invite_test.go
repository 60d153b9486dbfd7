package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

func TestCreate(t *testing.T) {
	t.Parallel()
	create := func(name string, ownerID uuid.UUID, email domain.Email, ownerName string) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error { return w.Create(name, ownerID, email, ownerName, t0) }
	}
	opened := func(name, ownerName string) domain.WorkspaceCreated {
		return domain.WorkspaceCreated{WorkspaceID: wsID, Name: name, OwnerUserID: owner.id, OwnerEmail: string(owner.email), OwnerName: ownerName, CreatedAt: t0}
	}
	runSpecs(t, []spec{
		{
			name: "owner becomes the first active Admin",
			when: create("  Acme  ", owner.id, owner.email, " Ada "),
			then: evs(opened("Acme", "Ada")),
			check: func(t *testing.T, w *domain.Workspace) {
				if !w.Exists() || w.Name() != "Acme" || w.ID() != wsID {
					t.Fatalf("workspace: got exists=%v name=%q id=%s, want exists=true name=%q id=%s", w.Exists(), w.Name(), w.ID(), "Acme", wsID)
				}
				wantMember(t, w, domain.Member{UserID: owner.id, Email: owner.email, Name: "Ada", Role: domain.RoleAdmin, Status: domain.StatusActive})
				wantActiveAdmins(t, w, 1)
				if w.MemberCount() != 1 {
					t.Fatalf("MemberCount: got %d, want 1", w.MemberCount())
				}
				if s := w.Settings(); s != domain.DefaultSettings() || !s.ManagersMayGrantAdmin {
					t.Fatalf("Settings: got %+v, want the default, with ManagersMayGrantAdmin true", s)
				}
			},
		},
		{name: "names of 200 characters", when: create(strings.Repeat("é", 200), owner.id, owner.email, strings.Repeat("ü", 200)), then: evs(opened(strings.Repeat("é", 200), strings.Repeat("ü", 200)))},
		{name: "twice", given: evs(created()), when: create("Acme", owner.id, owner.email, "Ada"), wantErr: domain.CodeWorkspaceExists},
		{name: "empty name", when: create("  ", owner.id, owner.email, "Ada"), wantErr: domain.CodeInvalidName},
		{name: "name of 201 characters", when: create(strings.Repeat("é", 201), owner.id, owner.email, "Ada"), wantErr: domain.CodeInvalidName},
		{name: "control character in name", when: create("Ac\x07me", owner.id, owner.email, "Ada"), wantErr: domain.CodeInvalidName},
		{name: "empty owner name", when: create("Acme", owner.id, owner.email, ""), wantErr: domain.CodeInvalidName},
		{name: "no owner id", when: create("Acme", uuid.Nil, owner.email, "Ada"), wantErr: domain.CodeInvalidInput},
		{name: "no owner address", when: create("Acme", owner.id, "", "Ada"), wantErr: domain.CodeInvalidInput},
	})
}

// inviteBatch is a batch sent at t0, valid a week, without limits, whose
// new invitations are numbered from first.
func inviteBatch(actor person, role domain.Role, text string, first int) domain.InviteBatch {
	entries, err := domain.ParseBatch(text)
	if err != nil {
		panic(err)
	}
	return domain.InviteBatch{
		Actor: actor.id, Role: role, Entries: entries, UserIDs: accounts,
		Now: t0, TTL: week, NewInvitation: newInvitations(first),
	}
}

func sentAt(b domain.InviteBatch, now time.Time) domain.InviteBatch { b.Now = now; return b }

func limitedTo(b domain.InviteBatch, l domain.InviteLimits) domain.InviteBatch {
	b.Limits = l
	return b
}

// anyDetail in a wanted result accepts any non-empty detail.
const anyDetail = "<any>"

func invitedResult(n int, p person) domain.InviteResult {
	return domain.InviteResult{Email: string(p.email), Outcome: domain.OutcomeInvited, UserID: p.id, InvitationID: invID(n), Token: tok(n).String()}
}

func memberResult(p person) domain.InviteResult {
	return domain.InviteResult{Email: string(p.email), Outcome: domain.OutcomeAlreadyMember, UserID: p.id, Detail: anyDetail}
}

func pendingResult(n int, p person) domain.InviteResult {
	return domain.InviteResult{Email: string(p.email), Outcome: domain.OutcomeAlreadyInvited, UserID: p.id, InvitationID: invID(n), Detail: anyDetail}
}

func invalidResult(input, detail string) domain.InviteResult {
	return domain.InviteResult{Email: input, Outcome: domain.OutcomeInvalid, Detail: detail}
}

// newInvite is the UserInvited event a batch built by inviteBatch records.
func newInvite(n int, p person, role domain.Role, by person, byRole domain.Role) domain.UserInvited {
	return invitedAt(n, p, role, by, byRole, t0)
}

// escalation sets the flag the builders derive (Role.Above), for the cases
// that state it rather than trust the rule they test.
func escalation(e domain.UserInvited, escalated bool) domain.UserInvited {
	e.Escalation = escalated
	return e
}

type inviteCase struct {
	name     string
	given    []domain.Event
	batch    domain.InviteBatch
	want     []domain.InviteResult
	then     []domain.Event
	wantErr  domain.Code
	checkErr func(*testing.T, error)
	check    func(*testing.T, *domain.Workspace)
}

func runInvites(t *testing.T, cases []inviteCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got []domain.InviteResult
			spec{
				given: c.given,
				when: func(w *domain.Workspace) error {
					var err error
					got, err = w.Invite(c.batch)
					return err
				},
				then: c.then, wantErr: c.wantErr, checkErr: c.checkErr, check: c.check,
			}.run(t)
			if c.wantErr != "" {
				if got != nil {
					t.Fatalf("results: got %+v with the error, want none", got)
				}
				return
			}
			wantResults(t, got, c.want)
		})
	}
}

func wantResults(t *testing.T, got, want []domain.InviteResult) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("results: got %d %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if w.Detail == anyDetail {
			if g.Detail == "" {
				t.Errorf("result[%d] (%s): got no detail, want one", i, w.Email)
			}
			g.Detail = anyDetail
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("result[%d]:\n  %s", i, strings.Join(fieldDiff(g, w), "\n  "))
		}
	}
}

func TestInvite(t *testing.T) {
	t.Parallel()
	runInvites(t, []inviteCase{
		{
			name:  "Admin invites a new address",
			given: team(),
			batch: inviteBatch(owner, domain.RoleEditor, "Nora@Example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleEditor, owner, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantMember(t, w, domain.Member{
					UserID: nora.id, Email: nora.email, Role: domain.RoleEditor, Status: domain.StatusInvited,
					Invitation: &domain.Invitation{
						ID: invID(10), InvitedBy: owner.id, InviterRole: domain.RoleAdmin, GrantedBy: owner.id,
						InvitedAt: t0, ExpiresAt: t0.Add(week), Attempt: 1,
					},
				})
				wantLink(t, w, tok(10), t0, "")
				wantActiveAdmins(t, w, 1)
			},
		},
		{
			name:  "mixed batch: new, invalid, member, new",
			given: team(),
			batch: inviteBatch(owner, domain.RoleMonitor, "nora@example.com, nope, MIA@example.com\nned@example.com", 10),
			want: []domain.InviteResult{
				invitedResult(10, nora),
				invalidResult("nope", "the address has no @"),
				memberResult(manager),
				invitedResult(11, ned),
			},
			then: evs(
				newInvite(10, nora, domain.RoleMonitor, owner, domain.RoleAdmin),
				newInvite(11, ned, domain.RoleMonitor, owner, domain.RoleAdmin),
			),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, manager, domain.RoleManager, domain.StatusActive)
			},
		},
		{
			name:  "only invalid addresses: results, no events",
			given: team(),
			batch: inviteBatch(owner, domain.RoleEditor, "nope, x@localhost", 10),
			want: []domain.InviteResult{
				invalidResult("nope", "the address has no @"),
				invalidResult("x@localhost", `the domain "localhost" has no dot`),
			},
		},
		{
			name:  "suspended member is already_member",
			given: evs(team(), suspended(editor, domain.RoleEditor)),
			batch: inviteBatch(owner, domain.RoleAdmin, "eve@example.com", 10),
			want:  []domain.InviteResult{memberResult(editor)},
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusSuspended)
			},
		},
		{
			name:  "pending invitation is already_invited, no second e-mail",
			given: evs(team(), invited(20, nora, domain.RoleMonitor)),
			batch: inviteBatch(manager, domain.RoleEditor, "nora@example.com, ned@example.com", 10),
			want:  []domain.InviteResult{pendingResult(20, nora), invitedResult(10, ned)},
			then:  evs(newInvite(10, ned, domain.RoleEditor, manager, domain.RoleManager)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, nora, domain.RoleMonitor, domain.StatusInvited)
				wantLink(t, w, tok(20), t0, "")
			},
		},
		{
			name:  "expired invitation: invited anew, the old link is revoked",
			given: evs(team(), invitedAt(20, nora, domain.RoleMonitor, owner, domain.RoleAdmin, t0.Add(-8*day))),
			batch: inviteBatch(manager, domain.RoleEditor, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleEditor, manager, domain.RoleManager)),
			check: func(t *testing.T, w *domain.Workspace) {
				m, _ := w.Member(nora.id)
				if m.Invitation == nil || m.Invitation.ID != invID(10) || m.Role != domain.RoleEditor || m.Invitation.Attempt != 1 {
					t.Fatalf("Member(nora): got %+v (invitation %+v), want the new invitation %s as Editor, attempt 1", m, m.Invitation, invID(10))
				}
				wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
				wantLink(t, w, tok(10), t0, "")
				if _, err := w.Accept(tok(20), "Nora", t0); domain.ErrorCode(err) != domain.CodeInvitationRevoked {
					t.Fatalf("Accept(old link): got %v, want code %q", err, domain.CodeInvitationRevoked)
				}
			},
		},
		{
			name:  "invitation expiring exactly now counts as expired",
			given: evs(team(), invitedAt(20, nora, domain.RoleMonitor, owner, domain.RoleAdmin, t0.Add(-week))),
			batch: inviteBatch(owner, domain.RoleMonitor, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleMonitor, owner, domain.RoleAdmin)),
		},
		{
			name:  "invitation marked expired: invited anew",
			given: evs(team(), invitedAt(20, nora, domain.RoleMonitor, owner, domain.RoleAdmin, t0.Add(-8*day)), expired(20, nora, t0.Add(-day))),
			batch: inviteBatch(owner, domain.RoleMonitor, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleMonitor, owner, domain.RoleAdmin)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
				if m, _ := w.Member(nora.id); m.Invitation == nil || m.Invitation.Expired {
					t.Fatalf("Member(nora).Invitation: got %+v, want a fresh, unexpired invitation", m.Invitation)
				}
			},
		},
		{
			name:  "invitation expiring in a nanosecond is still pending",
			given: evs(team(), invitedAt(20, nora, domain.RoleMonitor, owner, domain.RoleAdmin, t0.Add(-week+time.Nanosecond))),
			batch: inviteBatch(owner, domain.RoleMonitor, "nora@example.com", 10),
			want:  []domain.InviteResult{pendingResult(20, nora)},
		},
		{
			name:  "Manager inviting an Admin is flagged as escalation",
			given: team(),
			batch: inviteBatch(manager, domain.RoleAdmin, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(escalation(newInvite(10, nora, domain.RoleAdmin, manager, domain.RoleManager), true)),
		},
		{
			name:  "Admin inviting an Admin is not escalation",
			given: team(),
			batch: inviteBatch(owner, domain.RoleAdmin, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(escalation(newInvite(10, nora, domain.RoleAdmin, owner, domain.RoleAdmin), false)),
		},
		{
			name:  "Manager inviting a Manager is not escalation",
			given: team(),
			batch: inviteBatch(manager, domain.RoleManager, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleManager, manager, domain.RoleManager)),
		},
		{
			name:    "Manager inviting an Admin when the setting is off",
			given:   evs(team(), settingsChanged(false)),
			batch:   inviteBatch(manager, domain.RoleAdmin, "nora@example.com", 10),
			wantErr: domain.CodeNotAllowed,
		},
		{
			name:  "Manager inviting a Manager when the setting is off",
			given: evs(team(), settingsChanged(false)),
			batch: inviteBatch(manager, domain.RoleManager, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleManager, manager, domain.RoleManager)),
		},
		{
			name:  "Admin inviting an Admin when the setting is off",
			given: evs(team(), settingsChanged(false)),
			batch: inviteBatch(owner, domain.RoleAdmin, "nora@example.com", 10),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleAdmin, owner, domain.RoleAdmin)),
		},
		{name: "Editor cannot invite", given: team(), batch: inviteBatch(editor, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeNotAllowed},
		{name: "Monitor cannot invite", given: team(), batch: inviteBatch(monitor, domain.RoleAgentUser, "nora@example.com", 10), wantErr: domain.CodeNotAllowed},
		{name: "AgentUser cannot invite", given: team(), batch: inviteBatch(agent, domain.RoleAgentUser, "nora@example.com", 10), wantErr: domain.CodeNotAllowed},
		{name: "non-member", given: team(), batch: inviteBatch(outsider, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeWorkspaceNotFound},
		{name: "invited but not yet joined", given: evs(team(), invited(20, ned, domain.RoleAdmin)), batch: inviteBatch(ned, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeWorkspaceNotFound},
		{name: "removed member", given: evs(teamWithAdmin2(), removed(admin2, domain.RoleAdmin)), batch: inviteBatch(admin2, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeWorkspaceNotFound},
		{name: "workspace does not exist", batch: inviteBatch(owner, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspended Manager", given: evs(team(), suspended(manager, domain.RoleManager)), batch: inviteBatch(manager, domain.RoleEditor, "nora@example.com", 10), wantErr: domain.CodeMemberSuspended},
		{name: "unknown role", given: team(), batch: inviteBatch(owner, "Owner", "nora@example.com", 10), wantErr: domain.CodeInvalidRole},
		{name: "empty role", given: team(), batch: inviteBatch(owner, "", "nora@example.com", 10), wantErr: domain.CodeInvalidRole},
		{
			name:    "no lifetime",
			given:   team(),
			batch:   with(inviteBatch(owner, domain.RoleEditor, "nora@example.com", 10), func(b *domain.InviteBatch) { b.TTL = 0 }),
			wantErr: domain.CodeInvalidInput,
		},
		{
			name:  "an address without a resolved account: nothing is invited",
			given: team(),
			batch: with(inviteBatch(owner, domain.RoleEditor, "nora@example.com, stranger@example.com", 10), func(b *domain.InviteBatch) {
				b.UserIDs = map[domain.Email]uuid.UUID{nora.email: nora.id}
			}),
			wantErr: domain.CodeInvalidInput,
		},
		{
			name:  "TTL sets the expiry",
			given: team(),
			batch: with(inviteBatch(owner, domain.RoleEditor, "nora@example.com", 10), func(b *domain.InviteBatch) { b.TTL = 2 * day }),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then: evs(with(newInvite(10, nora, domain.RoleEditor, owner, domain.RoleAdmin), func(e *domain.UserInvited) {
				e.ExpiresAt = t0.Add(2 * day)
			})),
		},
	})
}

func TestInviteRemovedPersonAgainKeepsUserID(t *testing.T) {
	t.Parallel()
	given := evs(team(), removed(editor, domain.RoleEditor))
	w := replayed(given)
	entries, err := domain.ParseBatch("eve@example.com, nora@example.com, mia@example.com, nope")
	if err != nil {
		t.Fatalf("ParseBatch: %v", err)
	}
	need := w.NeedAccounts(entries)
	if want := []domain.Email{editor.email, nora.email}; !reflect.DeepEqual(need, want) {
		t.Fatalf("NeedAccounts: got %v, want %v (the removed member and the newcomer, not the member nor the invalid address)", need, want)
	}
	runInvites(t, []inviteCase{{
		name:  "invited again",
		given: given,
		batch: inviteBatch(owner, domain.RoleMonitor, "eve@example.com", 10),
		want:  []domain.InviteResult{invitedResult(10, editor)},
		then:  evs(newInvite(10, editor, domain.RoleMonitor, owner, domain.RoleAdmin)),
		check: func(t *testing.T, w *domain.Workspace) {
			wantStatus(t, w, editor, domain.RoleMonitor, domain.StatusInvited)
			if _, err := w.Accept(tok(10), "Eve", t0); err != nil {
				t.Fatalf("Accept: got %v, want the removed person to be able to join again", err)
			}
		},
	}})
}

func TestNeedAccountsOmitsPendingInvitations(t *testing.T) {
	t.Parallel()
	w := replayed(evs(team(), invited(20, nora, domain.RoleEditor)))
	entries, err := domain.ParseBatch("nora@example.com, ned@example.com")
	if err != nil {
		t.Fatalf("ParseBatch: %v", err)
	}
	if got, want := w.NeedAccounts(entries), []domain.Email{ned.email}; !reflect.DeepEqual(got, want) {
		t.Fatalf("NeedAccounts: got %v, want %v", got, want)
	}
}

func TestInviteRateLimits(t *testing.T) {
	t.Parallel()
	// The Manager sent three invitations 3, 2 and 1 hours ago.
	busy := evs(team(),
		invitedAt(20, nora, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-3*time.Hour)),
		invitedAt(21, ned, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-2*time.Hour)),
		invitedAt(22, nia, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-time.Hour)),
	)
	perInviter := domain.InviteLimits{PerInviter: 3}
	perWorkspace := domain.InviteLimits{PerWorkspace: 3}
	firstAgesOut := t0.Add(-3*time.Hour + day)
	runInvites(t, []inviteCase{
		{
			name:     "per inviter: the fourth in a day is refused",
			given:    busy,
			batch:    limitedTo(inviteBatch(manager, domain.RoleEditor, "nell@example.com", 10), perInviter),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantAll(wantRetryAt(firstAgesOut), wantMessage("you may send 3")),
		},
		{
			name:     "per inviter: a nanosecond before the oldest ages out",
			given:    busy,
			batch:    limitedTo(sentAt(inviteBatch(manager, domain.RoleEditor, "nell@example.com", 10), firstAgesOut.Add(-time.Nanosecond)), perInviter),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(firstAgesOut),
		},
		{
			name:  "per inviter: allowed again 24 hours after the oldest",
			given: busy,
			batch: limitedTo(sentAt(inviteBatch(manager, domain.RoleEditor, "nell@example.com", 10), firstAgesOut), perInviter),
			want:  []domain.InviteResult{invitedResult(10, nell)},
			then:  evs(invitedAt(10, nell, domain.RoleEditor, manager, domain.RoleManager, firstAgesOut)),
		},
		{
			name:     "per inviter: two more need the two oldest to age out",
			given:    busy,
			batch:    limitedTo(inviteBatch(manager, domain.RoleEditor, "nell@example.com, oz@example.com", 10), perInviter),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(t0.Add(-2*time.Hour + day)),
		},
		{
			name:  "per inviter: another inviter is not held back",
			given: busy,
			batch: limitedTo(inviteBatch(owner, domain.RoleEditor, "nell@example.com", 10), perInviter),
			want:  []domain.InviteResult{invitedResult(10, nell)},
			then:  evs(newInvite(10, nell, domain.RoleEditor, owner, domain.RoleAdmin)),
		},
		{
			name:     "per workspace: every inviter counts",
			given:    busy,
			batch:    limitedTo(inviteBatch(owner, domain.RoleEditor, "nell@example.com", 10), perWorkspace),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantAll(wantRetryAt(firstAgesOut), wantMessage("this workspace may send 3")),
		},
		{
			name:  "per workspace: allowed again 24 hours after the oldest",
			given: busy,
			batch: limitedTo(sentAt(inviteBatch(owner, domain.RoleEditor, "nell@example.com", 10), firstAgesOut), perWorkspace),
			want:  []domain.InviteResult{invitedResult(10, nell)},
			then:  evs(invitedAt(10, nell, domain.RoleEditor, owner, domain.RoleAdmin, firstAgesOut)),
		},
		{
			name: "per workspace: the whole batch must fit",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-3*time.Hour)),
				invitedAt(21, ned, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-3*time.Hour)),
			),
			batch:    limitedTo(inviteBatch(manager, domain.RoleEditor, "nell@example.com, nia@example.com", 10), perWorkspace),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(firstAgesOut),
		},
		{
			name:     "a batch larger than the limit never fits",
			given:    team(),
			batch:    limitedTo(inviteBatch(owner, domain.RoleEditor, "nora@example.com, ned@example.com, nia@example.com, nell@example.com", 10), perInviter),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(time.Time{}),
		},
		{
			name:  "exactly the limit in one batch",
			given: team(),
			batch: limitedTo(inviteBatch(owner, domain.RoleEditor, "nora@example.com, ned@example.com, nia@example.com", 10), domain.InviteLimits{PerInviter: 3, PerWorkspace: 3}),
			want:  []domain.InviteResult{invitedResult(10, nora), invitedResult(11, ned), invitedResult(12, nia)},
			then: evs(
				newInvite(10, nora, domain.RoleEditor, owner, domain.RoleAdmin),
				newInvite(11, ned, domain.RoleEditor, owner, domain.RoleAdmin),
				newInvite(12, nia, domain.RoleEditor, owner, domain.RoleAdmin),
			),
		},
		{
			name: "resends count",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-3*time.Hour)),
				resent(20, nora, 2, 30, manager, t0.Add(-2*time.Hour)),
				resent(20, nora, 3, 31, manager, t0.Add(-time.Hour)),
			),
			batch:    limitedTo(inviteBatch(manager, domain.RoleEditor, "nell@example.com", 10), perInviter),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(firstAgesOut),
		},
		{
			name:  "already invited, members and invalid addresses do not count",
			given: evs(team(), invitedAt(20, nora, domain.RoleEditor, manager, domain.RoleManager, t0.Add(-time.Hour))),
			batch: limitedTo(inviteBatch(owner, domain.RoleEditor, "nora@example.com, nope, eve@example.com, ned@example.com", 10), domain.InviteLimits{PerInviter: 1, PerWorkspace: 2}),
			want: []domain.InviteResult{
				pendingResult(20, nora), invalidResult("nope", "the address has no @"), memberResult(editor), invitedResult(10, ned),
			},
			then: evs(newInvite(10, ned, domain.RoleEditor, owner, domain.RoleAdmin)),
		},
		{
			name:  "only the last 24 hours count",
			given: team(), // the owner invited four people a month ago
			batch: limitedTo(inviteBatch(owner, domain.RoleEditor, "nora@example.com", 10), domain.InviteLimits{PerInviter: 1, PerWorkspace: 1}),
			want:  []domain.InviteResult{invitedResult(10, nora)},
			then:  evs(newInvite(10, nora, domain.RoleEditor, owner, domain.RoleAdmin)),
		},
	})
}

func TestResend(t *testing.T) {
	t.Parallel()
	pending := evs(team(), invited(20, nora, domain.RoleEditor))
	resendNow := func(actor, target person, s int, limits domain.InviteLimits) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error {
			id, link, err := w.Resend(actor.id, target.id, secret(s), t0, week, limits)
			if err != nil {
				return err
			}
			if id != invID(20) || link != tokWith(20, s).String() {
				return &domain.Error{Code: "test_mismatch", Message: "Resend answered " + id.String() + " " + link + ", want " + invID(20).String() + " " + tokWith(20, s).String()}
			}
			return nil
		}
	}
	resendEvent := func(attempt, s int, by person) domain.InvitationResent {
		return resent(20, nora, attempt, s, by, t0)
	}
	runSpecs(t, []spec{
		{
			name:  "Admin resends: new link, old link dead, attempt 2",
			given: pending,
			when:  resendNow(owner, nora, 30, domain.InviteLimits{}),
			then:  evs(resendEvent(2, 30, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
				wantLink(t, w, tokWith(20, 30), t0, "")
				m, _ := w.Member(nora.id)
				if m.Invitation.Attempt != 2 || !m.Invitation.ExpiresAt.Equal(t0.Add(week)) || m.Invitation.ID != invID(20) {
					t.Fatalf("invitation: got %+v, want the same id, attempt 2, expiring %v", m.Invitation, t0.Add(week))
				}
				if _, err := w.Accept(tok(20), "Nora", t0); domain.ErrorCode(err) != domain.CodeInvitationRevoked {
					t.Fatalf("Accept(old link): got %v, want code %q", err, domain.CodeInvitationRevoked)
				}
				if _, err := w.Accept(tokWith(20, 30), "Nora", t0); err != nil {
					t.Fatalf("Accept(new link): got %v, want success", err)
				}
			},
		},
		{
			name:  "Manager resends",
			given: pending,
			when:  resendNow(manager, nora, 30, domain.InviteLimits{}),
			then:  evs(resendEvent(2, 30, manager)),
		},
		{
			name:  "second resend is attempt 3 and kills the second link",
			given: evs(pending, resent(20, nora, 2, 30, owner, t0.Add(-time.Minute))),
			when:  resendNow(owner, nora, 31, domain.InviteLimits{}),
			then:  evs(resendEvent(3, 31, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantLink(t, w, tokWith(20, 30), t0, domain.CodeInvitationRevoked)
				wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
				wantLink(t, w, tokWith(20, 31), t0, "")
			},
		},
		{
			name: "revives an expired invitation",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-10*day)),
				expired(20, nora, t0.Add(-3*day)),
			),
			when: resendNow(owner, nora, 30, domain.InviteLimits{}),
			then: evs(resendEvent(2, 30, owner)),
			check: func(t *testing.T, w *domain.Workspace) {
				m, _ := w.Member(nora.id)
				if m.Invitation.Expired || !m.Invitation.ExpiresAt.Equal(t0.Add(week)) {
					t.Fatalf("invitation: got expired=%v expiresAt=%v, want expired=false expiresAt=%v", m.Invitation.Expired, m.Invitation.ExpiresAt, t0.Add(week))
				}
				wantLink(t, w, tokWith(20, 30), t0, "")
			},
		},
		{name: "Editor cannot resend", given: pending, when: resendNow(editor, nora, 30, domain.InviteLimits{}), wantErr: domain.CodeNotAllowed},
		{
			name:    "Manager cannot resend an Admin invitation once Managers may not grant Admin",
			given:   evs(team(), invited(20, nora, domain.RoleAdmin), settingsChanged(false)),
			when:    resendNow(manager, nora, 30, domain.InviteLimits{}),
			wantErr: domain.CodeNotAllowed,
		},
		{name: "non-member cannot resend", given: pending, when: resendNow(outsider, nora, 30, domain.InviteLimits{}), wantErr: domain.CodeWorkspaceNotFound},
		{name: "suspended Manager cannot resend", given: evs(pending, suspended(manager, domain.RoleManager)), when: resendNow(manager, nora, 30, domain.InviteLimits{}), wantErr: domain.CodeMemberSuspended},
		{name: "active member has no invitation", given: pending, when: resendNow(owner, editor, 30, domain.InviteLimits{}), wantErr: domain.CodeNotInvited},
		{name: "unknown person", given: pending, when: resendNow(owner, ned, 30, domain.InviteLimits{}), wantErr: domain.CodeUserNotFound},
		{name: "revoked invitation", given: evs(pending, revoked(20, nora, domain.RoleEditor)), when: resendNow(owner, nora, 30, domain.InviteLimits{}), wantErr: domain.CodeUserNotFound},
		{
			name:  "no lifetime",
			given: pending,
			when: func(w *domain.Workspace) error {
				_, _, err := w.Resend(owner.id, nora.id, secret(30), t0, 0, domain.InviteLimits{})
				return err
			},
			wantErr: domain.CodeInvalidInput,
		},
		{
			name:     "rate limited per inviter",
			given:    pending, // the owner invited Nora an hour ago
			when:     resendNow(owner, nora, 30, domain.InviteLimits{PerInviter: 1}),
			wantErr:  domain.CodeRateLimited,
			checkErr: wantRetryAt(t0.Add(-time.Hour + day)),
		},
		{
			name:    "rate limited per workspace",
			given:   pending,
			when:    resendNow(manager, nora, 30, domain.InviteLimits{PerWorkspace: 1}),
			wantErr: domain.CodeRateLimited,
		},
		{
			name:  "within the limits",
			given: pending,
			when:  resendNow(manager, nora, 30, domain.InviteLimits{PerWorkspace: 2, PerInviter: 1}),
			then:  evs(resendEvent(2, 30, manager)),
		},
	})
}

func TestRevokeInvitation(t *testing.T) {
	t.Parallel()
	pending := evs(team(), invited(20, nora, domain.RoleEditor))
	gone := func(t *testing.T, w *domain.Workspace) {
		wantGone(t, w, nora)
		wantLink(t, w, tok(20), t0, domain.CodeInvitationRevoked)
		if _, err := w.Accept(tok(20), "Nora", t0); domain.ErrorCode(err) != domain.CodeInvitationRevoked {
			t.Fatalf("Accept(revoked link): got %v, want code %q", err, domain.CodeInvitationRevoked)
		}
		if w.MemberCount() != 5 {
			t.Fatalf("MemberCount: got %d, want 5 (the team without the invitation)", w.MemberCount())
		}
		entries, _ := domain.ParseBatch(string(nora.email))
		if got := w.NeedAccounts(entries); len(got) != 1 {
			t.Fatalf("NeedAccounts(revoked address): got %v, want it listed so it can be invited again", got)
		}
	}
	runSpecs(t, []spec{
		{name: "Admin revokes", given: pending, when: revoke(owner, nora), then: evs(revoked(20, nora, domain.RoleEditor)), check: gone},
		{name: "Manager revokes", given: pending, when: revoke(manager, nora), then: evs(revoked(20, nora, domain.RoleEditor)), check: gone},
		{name: "Manager removes an invited person", given: pending, when: remove(manager, nora), then: evs(revoked(20, nora, domain.RoleEditor)), check: gone},
		{name: "Admin removes an invited person", given: pending, when: remove(owner, nora), then: evs(revoked(20, nora, domain.RoleEditor)), check: gone},
		{
			name:  "revoking an expired invitation",
			given: evs(team(), invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-10*day)), expired(20, nora, t0.Add(-3*day))),
			when:  revoke(owner, nora),
			then:  evs(revoked(20, nora, domain.RoleEditor)),
			check: func(t *testing.T, w *domain.Workspace) { wantGone(t, w, nora) },
		},
		{name: "Editor cannot revoke", given: pending, when: revoke(editor, nora), wantErr: domain.CodeNotAllowed},
		{name: "Editor cannot remove an invited person", given: pending, when: remove(editor, nora), wantErr: domain.CodeNotAllowed},
		{name: "non-member cannot revoke", given: pending, when: revoke(outsider, nora), wantErr: domain.CodeWorkspaceNotFound},
		{name: "revoking an active member", given: pending, when: revoke(owner, editor), wantErr: domain.CodeNotInvited},
		{name: "revoking an unknown person", given: pending, when: revoke(owner, ned), wantErr: domain.CodeUserNotFound},
		{name: "revoking twice", given: evs(pending, revoked(20, nora, domain.RoleEditor)), when: revoke(owner, nora), wantErr: domain.CodeUserNotFound},
	})
}
