package domain_test

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// This file holds the given/when/then harness of the domain tests and the
// fixtures they share: fixed ids, a fixed clock and builders of past events.

const (
	hour = time.Hour
	day  = 24 * hour
	week = 7 * day
)

// t0 is "now" in every test unless a case says otherwise.
var t0 = time.Date(2025, time.March, 3, 9, 0, 0, 0, time.UTC)

var (
	wsID    = uuid.MustParse("0a000000-0000-4000-8000-000000000001")
	otherWS = uuid.MustParse("0a000000-0000-4000-8000-000000000002")
	hookID  = uuid.MustParse("0b000000-0000-4000-8000-000000000001")
)

// person is a fixture user: a fixed id, address and name.
type person struct {
	id    uuid.UUID
	email domain.Email
	name  string
}

var (
	owner    = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a001"), "ada@example.com", "Ada"}
	admin2   = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a002"), "alan@example.com", "Alan"}
	manager  = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a003"), "mia@example.com", "Mia"}
	editor   = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a004"), "eve@example.com", "Eve"}
	monitor  = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a005"), "mo@example.com", "Mo"}
	agent    = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a006"), "aga@example.com", "Aga"}
	outsider = person{uuid.MustParse("0b000000-0000-4000-8000-00000000a007"), "oz@example.com", "Oz"}
	nora     = person{uuid.MustParse("0b000000-0000-4000-8000-00000000b001"), "nora@example.com", "Nora"}
	ned      = person{uuid.MustParse("0b000000-0000-4000-8000-00000000b002"), "ned@example.com", "Ned"}
	nia      = person{uuid.MustParse("0b000000-0000-4000-8000-00000000b003"), "nia@example.com", "Nia"}
	nell     = person{uuid.MustParse("0b000000-0000-4000-8000-00000000b004"), "nell@example.com", "Nell"}
)

var everyone = []person{owner, admin2, manager, editor, monitor, agent, outsider, nora, ned, nia, nell}

// accounts resolves every fixture address to its user id, as the caller of
// Invite does. Tests only read it.
var accounts = func() map[domain.Email]uuid.UUID {
	m := make(map[domain.Email]uuid.UUID)
	for _, p := range everyone {
		m[p.email] = p.id
	}
	return m
}()

// invID is the id of fixture invitation n; secret(n) its link's secret.
func invID(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("0c000000-0000-4000-8000-%012d", n))
}

func secret(n int) []byte {
	s := sha256.Sum256([]byte(fmt.Sprintf("secret %d", n)))
	return s[:]
}

// tok is the link of invitation n with the secret it was first sent with.
func tok(n int) domain.InvitationToken { return tokWith(n, n) }

// tokWith is the link of invitation n carrying secret s (after a resend).
func tokWith(n, s int) domain.InvitationToken {
	return domain.InvitationToken{WorkspaceID: wsID, InvitationID: invID(n), Secret: secret(s)}
}

// newInvitations yields invitation first, first+1, ... as Invite asks.
func newInvitations(first int) func() (uuid.UUID, []byte) {
	n := first - 1
	return func() (uuid.UUID, []byte) {
		n++
		return invID(n), secret(n)
	}
}

// Builders of past events.

func created() domain.WorkspaceCreated {
	return domain.WorkspaceCreated{
		WorkspaceID: wsID, Name: "Acme", OwnerUserID: owner.id,
		OwnerEmail: string(owner.email), OwnerName: owner.name, CreatedAt: t0.Add(-60 * day),
	}
}

func invitedAt(n int, p person, role domain.Role, by person, byRole domain.Role, at time.Time) domain.UserInvited {
	return domain.UserInvited{
		WorkspaceID: wsID, InvitationID: invID(n), UserID: p.id, Email: string(p.email),
		Role: string(role), InvitedBy: by.id, InviterRole: string(byRole),
		Escalation: role.Above(byRole), TokenHash: tok(n).Hash(p.email),
		InvitedAt: at, ExpiresAt: at.Add(week),
	}
}

// invited is invitation n of p, sent by the owner an hour before t0.
func invited(n int, p person, role domain.Role) domain.UserInvited {
	return invitedAt(n, p, role, owner, domain.RoleAdmin, t0.Add(-time.Hour))
}

func acceptedAt(n int, p person, role domain.Role, at time.Time) domain.InvitationAccepted {
	return domain.InvitationAccepted{
		WorkspaceID: wsID, InvitationID: invID(n), UserID: p.id, Email: string(p.email),
		Name: p.name, Role: string(role), AcceptedAt: at,
	}
}

// joined is p invited by the owner (invitation n) a month ago and accepted.
func joined(n int, p person, role domain.Role) []domain.Event {
	at := t0.Add(-30 * day)
	return []domain.Event{
		invitedAt(n, p, role, owner, domain.RoleAdmin, at),
		acceptedAt(n, p, role, at.Add(time.Hour)),
	}
}

// resent gives invitation n of p the secret of s, as attempt.
func resent(n int, p person, attempt, s int, by person, at time.Time) domain.InvitationResent {
	return domain.InvitationResent{
		WorkspaceID: wsID, InvitationID: invID(n), UserID: p.id, Email: string(p.email),
		Attempt: attempt, ResentBy: by.id, TokenHash: tokWith(n, s).Hash(p.email),
		ResentAt: at, ExpiresAt: at.Add(week),
	}
}

func expired(n int, p person, at time.Time) domain.InvitationExpired {
	return domain.InvitationExpired{WorkspaceID: wsID, InvitationID: invID(n), UserID: p.id, Email: string(p.email), ExpiredAt: at}
}

func revoked(n int, p person, role domain.Role) domain.InvitationRevoked {
	return domain.InvitationRevoked{WorkspaceID: wsID, InvitationID: invID(n), UserID: p.id, Email: string(p.email), Role: string(role)}
}

func roleChanged(p person, from, to domain.Role, by person) domain.RoleChanged {
	return domain.RoleChanged{WorkspaceID: wsID, UserID: p.id, Email: string(p.email), FromRole: string(from), ToRole: string(to), ChangedBy: by.id}
}

func roleChangedUntil(p person, from, to domain.Role, by person, until time.Time) domain.RoleChanged {
	e := roleChanged(p, from, to, by)
	u := until.UTC()
	e.Until = &u
	return e
}

func grantExpired(p person, from, to domain.Role, until time.Time) domain.RoleGrantExpired {
	return domain.RoleGrantExpired{WorkspaceID: wsID, UserID: p.id, Email: string(p.email), FromRole: string(from), ToRole: string(to), Until: until}
}

func grantKept(p person, role, previous domain.Role, until time.Time) domain.RoleGrantExpiryRefused {
	return domain.RoleGrantExpiryRefused{
		WorkspaceID: wsID, UserID: p.id, Email: string(p.email), Role: string(role),
		PreviousRole: string(previous), Until: until, Reason: string(domain.CodeLastAdmin),
	}
}

func removed(p person, role domain.Role) domain.MemberRemoved {
	return domain.MemberRemoved{WorkspaceID: wsID, UserID: p.id, Email: string(p.email), Role: string(role)}
}

func suspended(p person, role domain.Role) domain.MemberSuspended {
	return domain.MemberSuspended{WorkspaceID: wsID, UserID: p.id, Email: string(p.email), Role: string(role)}
}

func reactivated(p person, role domain.Role) domain.MemberReactivated {
	return domain.MemberReactivated{WorkspaceID: wsID, UserID: p.id, Email: string(p.email), Role: string(role)}
}

func settingsChanged(managersMayGrantAdmin bool) domain.WorkspaceSettingsChanged {
	return domain.WorkspaceSettingsChanged{WorkspaceID: wsID, ManagersMayGrantAdmin: managersMayGrantAdmin}
}

// team is a workspace with its owner (the only Admin), a Manager, an
// Editor, a Monitor and an AgentUser, all active.
func team() []domain.Event {
	return evs(
		created(),
		joined(1, manager, domain.RoleManager),
		joined(2, editor, domain.RoleEditor),
		joined(3, monitor, domain.RoleMonitor),
		joined(4, agent, domain.RoleAgentUser),
	)
}

// teamWithAdmin2 is team with a second active Admin.
func teamWithAdmin2() []domain.Event {
	return evs(team(), joined(5, admin2, domain.RoleAdmin))
}

// with answers a copy of v as change leaves it: a fixture with one field
// set otherwise.
func with[T any](v T, change func(*T)) T {
	change(&v)
	return v
}

// evs flattens events and lists of events into one list.
func evs(parts ...any) []domain.Event {
	var out []domain.Event
	for _, p := range parts {
		if list, ok := p.([]domain.Event); ok {
			out = append(out, list...)
			continue
		}
		if _, ok := domain.TypeOf(p); !ok {
			panic(fmt.Sprintf("evs: %T is not an event", p))
		}
		out = append(out, p)
	}
	return out
}

func replayed(events []domain.Event) *domain.Workspace {
	w := domain.NewWorkspace(wsID)
	w.Replay(events...)
	return w
}

// spec is one given/when/then case: past events, a command, and either the
// exact events it records or the code of the error it refuses with.
type spec struct {
	name    string
	given   []domain.Event
	when    func(w *domain.Workspace) error
	then    []domain.Event // recorded events, in order, when wantErr is ""
	wantErr domain.Code
	// checkErr makes extra assertions on the refusal.
	checkErr func(t *testing.T, err error)
	// check makes extra assertions on the state after Commit.
	check func(t *testing.T, w *domain.Workspace)
}

// run plays the case. Besides what the case states, it checks that deciding
// changes no state, that a refusal records nothing, and that committing the
// recorded events gives the same state as replaying them.
func (s spec) run(t *testing.T) {
	t.Helper()
	w := replayed(s.given)
	if p := w.Pending(); len(p) != 0 {
		t.Fatalf("given: replay left %d pending events, want none", len(p))
	}
	untouched := replayed(s.given)
	ids := idsIn(s.given, s.then)

	err := s.when(w)
	if s.wantErr != "" {
		if got := domain.ErrorCode(err); got != s.wantErr {
			t.Fatalf("when: got error %v (code %q), want an error with code %q", err, got, s.wantErr)
		}
		if s.checkErr != nil {
			s.checkErr(t, err)
		}
		if p := w.Pending(); len(p) != 0 {
			t.Fatalf("when: refused with %q but recorded %d events, want none:\n%s", s.wantErr, len(p), dump(p))
		}
		sameState(t, "after a refused command", w, untouched, ids)
		return
	}
	if err != nil {
		t.Fatalf("when: got error %v, want success recording %d events", err, len(s.then))
	}
	if !diffEvents(t, w.Pending(), s.then) {
		t.FailNow()
	}
	sameState(t, "before Commit (deciding must not change the state)", w, untouched, ids)
	w.Commit()
	if p := w.Pending(); len(p) != 0 {
		t.Fatalf("Commit left %d pending events, want none", len(p))
	}
	sameState(t, "after Commit, compared with a replay of given+then", w, replayed(evs(s.given, s.then)), ids)
	if s.check != nil {
		s.check(t, w)
	}
}

func runSpecs(t *testing.T, specs []spec) {
	t.Helper()
	seen := make(map[string]bool)
	for _, s := range specs {
		if seen[s.name] {
			t.Fatalf("two cases are named %q", s.name)
		}
		seen[s.name] = true
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t)
		})
	}
}

// idsIn collects every uuid of the events, plus every fixture person, so
// that state comparisons look at every membership a case can touch.
func idsIn(lists ...[]domain.Event) []uuid.UUID {
	seen := make(map[uuid.UUID]bool)
	var out []uuid.UUID
	add := func(id uuid.UUID) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, p := range everyone {
		add(p.id)
	}
	for _, l := range lists {
		for _, e := range l {
			v := reflect.ValueOf(e)
			for i := 0; i < v.NumField(); i++ {
				if id, ok := v.Field(i).Interface().(uuid.UUID); ok {
					add(id)
				}
			}
		}
	}
	return out
}

// sameState fails the test when two workspaces differ in anything a reader
// or a decision can see: existence, name, settings, counts, next expiry and
// each membership (its invitation's unexported token hash included).
func sameState(t *testing.T, when string, got, want *domain.Workspace, ids []uuid.UUID) {
	t.Helper()
	var diffs []string
	cmp := func(what string, g, w any) {
		if !reflect.DeepEqual(g, w) {
			diffs = append(diffs, fmt.Sprintf("%s: got %+v, want %+v", what, g, w))
		}
	}
	cmp("Exists", got.Exists(), want.Exists())
	cmp("Name", got.Name(), want.Name())
	cmp("Settings", got.Settings(), want.Settings())
	cmp("ActiveAdmins", got.ActiveAdmins(), want.ActiveAdmins())
	cmp("MemberCount", got.MemberCount(), want.MemberCount())
	cmp("Webhooks", got.Webhooks(), want.Webhooks())
	gn, gok := got.NextExpiry()
	wn, wok := want.NextExpiry()
	cmp("NextExpiry", fmt.Sprint(gn, gok), fmt.Sprint(wn, wok))
	for _, id := range ids {
		gm, gok := got.Member(id)
		wm, wok := want.Member(id)
		cmp("Member("+id.String()+") found", gok, wok)
		for _, d := range fieldDiff(gm, wm) {
			diffs = append(diffs, "Member("+id.String()+")."+d)
		}
		gr, grok := got.Review(id)
		wr, wrok := want.Review(id)
		cmp("Review("+id.String()+")", fmt.Sprint(gr, grok), fmt.Sprint(wr, wrok))
		if wrok {
			for _, u := range ids {
				cmp("InReview("+id.String()+", "+u.String()+")", got.InReview(id, u), want.InReview(id, u))
			}
		}
		if wok {
			bm, bok := got.MemberByEmail(wm.Email)
			cmp("MemberByEmail("+string(wm.Email)+")", fmt.Sprint(bm.UserID, bok), fmt.Sprint(wm.UserID, true))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("state %s differs:\n  %s", when, strings.Join(diffs, "\n  "))
	}
}

// diffEvents reports, field by field, how the recorded events differ from
// the wanted ones, and answers whether they are the same.
func diffEvents(t reporter, got, want []domain.Event) bool {
	t.Helper()
	if len(got) == 0 && len(want) == 0 || reflect.DeepEqual(got, want) {
		return true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "recorded events differ: got %d, want %d\n", len(got), len(want))
	for i := 0; i < max(len(got), len(want)); i++ {
		switch {
		case i >= len(got):
			fmt.Fprintf(&b, "  [%d] missing, want %T%+v\n", i, want[i], want[i])
		case i >= len(want):
			fmt.Fprintf(&b, "  [%d] unexpected %T%+v\n", i, got[i], got[i])
		case reflect.TypeOf(got[i]) != reflect.TypeOf(want[i]):
			fmt.Fprintf(&b, "  [%d] got %T%+v, want %T%+v\n", i, got[i], got[i], want[i], want[i])
		default:
			for _, d := range fieldDiff(got[i], want[i]) {
				fmt.Fprintf(&b, "  [%d] %s.%s\n", i, domain.EventName(got[i]), d)
			}
		}
	}
	t.Error(b.String())
	return false
}

// reporter is the part of *testing.T that diffEvents uses, so that the
// harness's own test can watch it report.
type reporter interface {
	Helper()
	Error(args ...any)
}

type recorder struct{ reports []string }

func (r *recorder) Helper()           {}
func (r *recorder) Error(args ...any) { r.reports = append(r.reports, fmt.Sprint(args...)) }

// fieldDiff lists "Field: got x, want y" for each differing field of two
// structs of one type (pointers to structs are followed).
func fieldDiff(got, want any) []string { return diffFields(got, want, true) }

// exportedDiff is fieldDiff blind to unexported fields, for wanted values a
// test cannot spell out completely (an invitation's token hash).
func exportedDiff(got, want any) []string { return diffFields(got, want, false) }

func diffFields(got, want any, unexported bool) []string {
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	if g.Kind() == reflect.Pointer && w.Kind() == reflect.Pointer && !g.IsNil() && !w.IsNil() {
		g, w = g.Elem(), w.Elem()
	}
	if g.Type() != w.Type() || g.Kind() != reflect.Struct {
		if reflect.DeepEqual(got, want) {
			return nil
		}
		return []string{fmt.Sprintf("got %+v, want %+v", got, want)}
	}
	var out []string
	for i := 0; i < g.NumField(); i++ {
		f := g.Type().Field(i)
		gv, wv := g.Field(i), w.Field(i)
		if !f.IsExported() {
			if !unexported {
				continue
			}
			// Unexported fields (a token hash) can only be printed.
			if gs, ws := fmt.Sprintf("%+v", gv), fmt.Sprintf("%+v", wv); gs != ws {
				out = append(out, fmt.Sprintf("%s: got %s, want %s", f.Name, gs, ws))
			}
			continue
		}
		gf, wf := gv.Interface(), wv.Interface()
		switch {
		case reflect.DeepEqual(gf, wf):
		case gv.Kind() == reflect.Pointer && !gv.IsNil() && !wv.IsNil():
			for _, d := range diffFields(gf, wf, unexported) {
				out = append(out, f.Name+"."+d)
			}
		default:
			out = append(out, fmt.Sprintf("%s: got %+v, want %+v", f.Name, gf, wf))
		}
	}
	return out
}

func dump(events []domain.Event) string {
	var b strings.Builder
	for i, e := range events {
		fmt.Fprintf(&b, "  [%d] %T%+v\n", i, e, e)
	}
	return b.String()
}

// Commands as "when" functions.

func accept(t domain.InvitationToken, name string, now time.Time) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error {
		_, err := w.Accept(t, name, now)
		return err
	}
}

func changeRole(actor, target person, role domain.Role) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.ChangeRole(actor.id, target.id, role) }
}

func changeRoleUntil(actor, target person, role domain.Role, until, now time.Time) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.ChangeRoleUntil(actor.id, target.id, role, until, now) }
}

func expireGrants(now time.Time) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { w.ExpireRoleGrants(now); return nil }
}

func remove(actor, target person) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.Remove(actor.id, target.id) }
}

func revoke(actor, target person) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.RevokeInvitation(actor.id, target.id) }
}

func suspend(actor, target person) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.Suspend(actor.id, target.id) }
}

func reactivate(actor, target person) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.Reactivate(actor.id, target.id) }
}

// Common assertions for check functions.

func wantMember(t *testing.T, w *domain.Workspace, want domain.Member) {
	t.Helper()
	got, ok := w.Member(want.UserID)
	if !ok {
		t.Fatalf("Member(%s): not found, want %+v", want.Email, want)
	}
	if d := exportedDiff(got, want); len(d) > 0 {
		t.Fatalf("Member(%s):\n  %s", want.Email, strings.Join(d, "\n  "))
	}
}

func wantStatus(t *testing.T, w *domain.Workspace, p person, role domain.Role, status domain.Status) {
	t.Helper()
	m, ok := w.Member(p.id)
	if !ok {
		t.Fatalf("Member(%s): not found, want %s %s", p.email, status, role)
	}
	if m.Role != role || m.Status != status {
		t.Fatalf("Member(%s): got %s %s, want %s %s", p.email, m.Status, m.Role, status, role)
	}
}

func wantGone(t *testing.T, w *domain.Workspace, p person) {
	t.Helper()
	if m, ok := w.Member(p.id); ok {
		t.Fatalf("Member(%s): got %+v, want no membership", p.email, m)
	}
	if m, ok := w.MemberByEmail(p.email); ok {
		t.Fatalf("MemberByEmail(%s): got %+v, want no membership", p.email, m)
	}
}

func wantActiveAdmins(t *testing.T, w *domain.Workspace, want int) {
	t.Helper()
	if got := w.ActiveAdmins(); got != want {
		t.Fatalf("ActiveAdmins: got %d, want %d", got, want)
	}
}

// wantLink checks what a link answers now: nothing wrong ("") or a code.
func wantLink(t *testing.T, w *domain.Workspace, tk domain.InvitationToken, now time.Time, want domain.Code) {
	t.Helper()
	_, err := w.Invitation(tk, now)
	if got := domain.ErrorCode(err); got != want || (want == "") != (err == nil) {
		t.Fatalf("Invitation(link of %s): got error %v (code %q), want code %q", tk.InvitationID, err, got, want)
	}
	if len(w.Pending()) != 0 {
		t.Fatalf("Invitation (showing a link) recorded %d events, want none", len(w.Pending()))
	}
}

func wantRetryAt(want time.Time) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		de, ok := err.(*domain.Error)
		if !ok {
			t.Fatalf("error: got %T, want *domain.Error", err)
		}
		if !de.RetryAt.Equal(want) {
			t.Fatalf("RetryAt: got %v, want %v", de.RetryAt, want)
		}
	}
}

func wantMessage(substr string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !strings.Contains(err.Error(), substr) {
			t.Fatalf("error message: got %q, want it to contain %q", err.Error(), substr)
		}
	}
}

// wantRefusal checks that err, which call answered, has code and a message
// that says reason.
func wantRefusal(t *testing.T, call string, err error, code domain.Code, reason string) {
	t.Helper()
	if got := domain.ErrorCode(err); got != code {
		t.Fatalf("%s: got error %v (code %q), want code %q", call, err, got, code)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: got message %q, want it to say %q", call, err.Error(), reason)
	}
}

// wantAll runs every check on the error.
func wantAll(checks ...func(*testing.T, error)) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		for _, check := range checks {
			check(t, err)
		}
	}
}

// TestHarnessCatchesMistakes shows that the harness's own comparisons can fail.
func TestHarnessCatchesMistakes(t *testing.T) {
	t.Parallel()
	a := []domain.Event{settingsChanged(false)}
	b := []domain.Event{settingsChanged(true)}
	if !diffEvents(t, a, a) {
		t.Fatalf("diffEvents(a, a): got different, want same")
	}
	probe := &recorder{}
	if diffEvents(probe, a, b) || len(probe.reports) != 1 || !strings.Contains(probe.reports[0], "ManagersMayGrantAdmin: got false, want true") {
		t.Fatalf("diffEvents(a, b): got reports %q, want one naming ManagersMayGrantAdmin", probe.reports)
	}
	probe = &recorder{}
	if diffEvents(probe, a, nil) || len(probe.reports) != 1 || !strings.Contains(probe.reports[0], "unexpected") {
		t.Fatalf("diffEvents(a, nil): got reports %q, want one naming the unexpected event", probe.reports)
	}
	if d := fieldDiff(settingsChanged(false), settingsChanged(true)); len(d) != 1 || !strings.HasPrefix(d[0], "ManagersMayGrantAdmin:") {
		t.Fatalf("fieldDiff: got %q, want one line naming ManagersMayGrantAdmin", d)
	}
}
