package domain_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// stream drives one workspace through a long, seeded sequence of commands,
// committing each one's events as the store would, and keeps every event.
type stream struct {
	t       *testing.T
	rng     *rand.Rand
	w       *domain.Workspace
	history []domain.Event
	pool    []person
	ids     []uuid.UUID
	tokens  []domain.InvitationToken
	invs    []uuid.UUID
	hooks   []uuid.UUID
	now     time.Time
	next    int // number of the next invitation or secret
	limits  domain.InviteLimits
	reviews []uuid.UUID
}

func newStream(t *testing.T, seed uint64, people int) *stream {
	s := &stream{
		t:      t,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		w:      domain.NewWorkspace(wsID),
		now:    t0,
		next:   1000,
		limits: domain.InviteLimits{PerWorkspace: 60, PerInviter: 25},
	}
	for i := 0; i < people; i++ {
		p := person{
			id:    uuid.MustParse(fmt.Sprintf("0e000000-0000-4000-8000-%012d", i)),
			email: domain.Email(fmt.Sprintf("user%02d@example.com", i)),
			name:  fmt.Sprintf("User %d", i),
		}
		s.pool = append(s.pool, p)
		s.ids = append(s.ids, p.id)
	}
	return s
}

// do runs one command: a refusal must record nothing; what is recorded is
// committed and kept. Afterwards the workspace's invariants must hold.
func (s *stream) do(what string, cmd func() error) error {
	s.t.Helper()
	err := cmd()
	if err != nil && len(s.w.Pending()) != 0 {
		s.t.Fatalf("%s: refused with %v but recorded %d events, want none", what, err, len(s.w.Pending()))
	}
	if err != nil && domain.ErrorCode(err) == "" {
		s.t.Fatalf("%s: got error %v without a domain code, want a domain error", what, err)
	}
	s.history = append(s.history, s.w.Pending()...)
	s.w.Commit()
	s.invariants(what)
	return err
}

// invariants checks what must hold after every command: the workspace keeps
// an active Admin, and ActiveAdmins and MemberCount agree with the members.
func (s *stream) invariants(after string) {
	s.t.Helper()
	admins, members := 0, 0
	for _, p := range s.pool {
		m, ok := s.w.Member(p.id)
		if !ok {
			continue
		}
		members++
		if m.Status == domain.StatusActive && m.Role == domain.RoleAdmin {
			admins++
		}
		if (m.Status == domain.StatusInvited) != (m.Invitation != nil) {
			s.t.Fatalf("after %s: Member(%s) is %s with invitation %+v, want an invitation exactly while invited", after, p.email, m.Status, m.Invitation)
		}
	}
	if got := s.w.ActiveAdmins(); got != admins || got < 1 {
		s.t.Fatalf("after %s: ActiveAdmins got %d, want %d (counted from members) and at least 1", after, got, admins)
	}
	if got := s.w.MemberCount(); got != members {
		s.t.Fatalf("after %s: MemberCount got %d, want %d", after, got, members)
	}
}

func (s *stream) pick() person { return s.pool[s.rng.IntN(len(s.pool))] }

func (s *stream) role() domain.Role { return domain.Roles[s.rng.IntN(len(domain.Roles))] }

// actor is mostly a member who may invite, sometimes anyone at all.
func (s *stream) actor() person {
	if s.rng.IntN(5) == 0 {
		return s.pick()
	}
	var able []person
	for _, p := range s.pool {
		if m, ok := s.w.Member(p.id); ok && m.Status == domain.StatusActive && m.Role.Can(domain.PermInviteUsers) {
			able = append(able, p)
		}
	}
	if len(able) == 0 {
		return s.pool[0]
	}
	// Admins act more often, so that managing commands mostly pass.
	for _, p := range able {
		if m, _ := s.w.Member(p.id); m.Role == domain.RoleAdmin && s.rng.IntN(2) == 0 {
			return p
		}
	}
	return able[s.rng.IntN(len(able))]
}

// recent picks an index among the last few of n, mostly: recent links are
// the ones still alive.
func recent(rng *rand.Rand, n int) int {
	if rng.IntN(4) == 0 {
		return rng.IntN(n)
	}
	return max(0, n-1-rng.IntN(8))
}

func (s *stream) newInvitation() (uuid.UUID, []byte) {
	s.next++
	return invID(s.next), secret(s.next)
}

func (s *stream) step(i int) {
	s.now = s.now.Add(time.Duration(s.rng.IntN(6*60)) * time.Minute)
	what := func(name string) string { return fmt.Sprintf("step %d: %s", i, name) }
	switch k := s.rng.IntN(22); {
	case k < 5:
		var text string
		for n := 1 + s.rng.IntN(4); n > 0; n-- {
			text += string(s.pick().email) + ", "
		}
		if s.rng.IntN(10) == 0 {
			text += "not-an-address"
		}
		entries, err := domain.ParseBatch(text)
		if err != nil {
			s.t.Fatalf("ParseBatch(%q): %v", text, err)
		}
		accounts := make(map[domain.Email]uuid.UUID)
		for _, p := range s.pool {
			accounts[p.email] = p.id
		}
		b := domain.InviteBatch{
			Actor: s.actor().id, Role: s.role(), Entries: entries, UserIDs: accounts, Now: s.now,
			TTL: time.Duration(1+s.rng.IntN(4)) * day, Limits: s.limits, NewInvitation: s.newInvitation,
		}
		var results []domain.InviteResult
		if s.do(what("invite"), func() (err error) { results, err = s.w.Invite(b); return err }) == nil {
			for _, r := range results {
				if r.Outcome == domain.OutcomeInvited {
					tk, err := domain.ParseInvitationToken(r.Token)
					if err != nil {
						s.t.Fatalf("%s: result token %q does not parse: %v", what("invite"), r.Token, err)
					}
					s.tokens = append(s.tokens, tk)
					s.invs = append(s.invs, r.InvitationID)
				}
			}
		}
	case k < 9:
		if len(s.tokens) == 0 {
			return
		}
		tk := s.tokens[recent(s.rng, len(s.tokens))]
		s.do(what("accept"), func() error {
			_, err := s.w.Accept(tk, fmt.Sprintf("Name %d", i), s.now)
			return err
		})
	case k < 11:
		target := s.pick()
		s.next++
		sec := secret(s.next)
		var link string
		if s.do(what("resend"), func() (err error) {
			_, link, err = s.w.Resend(s.actor().id, target.id, sec, s.now, 3*day, s.limits)
			return err
		}) == nil {
			tk, err := domain.ParseInvitationToken(link)
			if err != nil {
				s.t.Fatalf("%s: link %q does not parse: %v", what("resend"), link, err)
			}
			s.tokens = append(s.tokens, tk)
		}
	case k < 12:
		s.do(what("revoke"), func() error { return s.w.RevokeInvitation(s.actor().id, s.pick().id) })
	case k < 13:
		s.do(what("remove"), func() error { return s.w.Remove(s.actor().id, s.pick().id) })
	case k < 15:
		if s.rng.IntN(4) == 0 {
			// An Admin hands the workspace to someone for a while and steps
			// down: when the grant ends, it may be the last active Admin's.
			a, heir := s.actor(), s.pick()
			until := s.now.Add(time.Duration(1+s.rng.IntN(6*60)) * time.Minute)
			s.do(what("hand over until"), func() error {
				return s.w.ChangeRoleUntil(a.id, heir.id, domain.RoleAdmin, until, s.now)
			})
			s.do(what("step down"), func() error { return s.w.ChangeRole(a.id, a.id, domain.RoleEditor) })
			return
		}
		if s.rng.IntN(2) == 0 {
			until := s.now.Add(time.Duration(s.rng.IntN(12*60)-60) * time.Minute)
			s.do(what("change role until"), func() error {
				return s.w.ChangeRoleUntil(s.actor().id, s.pick().id, s.role(), until, s.now)
			})
			return
		}
		s.do(what("change role"), func() error { return s.w.ChangeRole(s.actor().id, s.pick().id, s.role()) })
	case k < 16:
		s.do(what("suspend"), func() error { return s.w.Suspend(s.actor().id, s.pick().id) })
	case k < 17:
		s.do(what("reactivate"), func() error { return s.w.Reactivate(s.actor().id, s.pick().id) })
	case k < 18:
		may := s.rng.IntN(2) == 0
		s.do(what("settings"), func() error {
			return s.w.UpdateSettings(s.actor().id, domain.Settings{ManagersMayGrantAdmin: may})
		})
	case k < 19:
		s.do(what("expire"), func() error { s.w.ExpireInvitations(s.now); s.w.ExpireRoleGrants(s.now); return nil })
	case k >= 20:
		s.reviewStep(what)
	default:
		if s.rng.IntN(5) == 0 {
			s.webhook(what)
			return
		}
		if s.rng.IntN(10) == 0 {
			s.do(what("accept an audit divergence"), func() error {
				return s.w.AcceptAuditDivergence(int64(1+s.rng.IntN(100)), "live", "rebuilt")
			})
			return
		}
		if len(s.invs) == 0 {
			return
		}
		inv, attempt := s.invs[recent(s.rng, len(s.invs))], 1+s.rng.IntN(3)
		s.do(what("e-mail outcome"), func() error {
			if s.rng.IntN(2) == 0 {
				s.w.RecordEmailSent(inv, attempt)
			} else {
				s.w.RecordEmailFailed(inv, attempt, "bounced")
			}
			return nil
		})
	}
}

// webhook subscribes, removes or replays a webhook, now and then one that
// does not exist, by anyone.
func (s *stream) webhook(what func(string) string) {
	switch k := s.rng.IntN(4); {
	case k < 2 || len(s.hooks) == 0:
		s.next++
		id := uuid.MustParse(fmt.Sprintf("0b000000-0000-4000-8000-%012d", s.next))
		events := []string{domain.AllEvents}
		if k == 1 {
			events = []string{"UserInvited", "RoleChanged"}
		}
		if s.do(what("subscribe a webhook"), func() error {
			return s.w.SubscribeWebhook(s.actor().id, id, fmt.Sprintf("https://hooks.example.com/%d", s.next), events)
		}) == nil {
			s.hooks = append(s.hooks, id)
		}
	case k == 2:
		id := s.hooks[s.rng.IntN(len(s.hooks))]
		s.do(what("remove a webhook"), func() error { return s.w.RemoveWebhook(s.actor().id, id) })
	default:
		id := s.hooks[s.rng.IntN(len(s.hooks))]
		s.do(what("replay a webhook"), func() error {
			return s.w.ReplayWebhook(s.actor().id, id, domain.Position{Commit: uint64(s.rng.IntN(100))})
		})
	}
}

// reviewStep starts an access review, decides one of its items, or decides
// every item of one (keep) and completes it.
func (s *stream) reviewStep(what func(string) string) {
	a := s.actor()
	if len(s.reviews) == 0 || s.rng.IntN(4) == 0 {
		s.next++
		id := uuid.MustParse(fmt.Sprintf("0d000000-0000-4000-8000-%012d", s.next))
		if s.do(what("start a review"), func() error { return s.w.StartAccessReview(a.id, id, "Review", s.now) }) == nil {
			s.reviews = append(s.reviews, id)
		}
		return
	}
	id := s.reviews[recent(s.rng, len(s.reviews))]
	if s.rng.IntN(3) == 0 {
		for _, p := range s.pool {
			if s.w.InReview(id, p.id) {
				s.do(what("keep"), func() error {
					return s.w.DecideAccessReviewItem(a.id, id, p.id, domain.DecisionKeep, "", "")
				})
			}
		}
		s.do(what("complete a review"), func() error { return s.w.CompleteAccessReview(a.id, id) })
		return
	}
	target := s.pick()
	d := []domain.ReviewDecision{domain.DecisionKeep, domain.DecisionChangeRole, domain.DecisionRevoke}[s.rng.IntN(3)]
	var role domain.Role
	if d == domain.DecisionChangeRole {
		role = s.role()
	}
	s.do(what("decide an item"), func() error {
		return s.w.DecideAccessReviewItem(a.id, id, target.id, d, role, "seen")
	})
}

// TestReplayMatchesCommit checks that deciding and applying agree: the state
// a workspace reaches by committing each command's events is the state a
// fresh workspace reaches by replaying the whole stream, whether the events
// come straight from memory or back from their stored encoding.
func TestReplayMatchesCommit(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			s := newStream(t, seed, 30)
			owner := s.pool[0]
			s.do("create", func() error { return s.w.Create("Acme", owner.id, owner.email, owner.name, s.now) })
			for i := 0; i < 2500; i++ {
				s.step(i)
			}

			counts := make(map[string]int)
			for _, e := range s.history {
				counts[domain.EventName(e)]++
			}
			// Every workspace event but logins, which have a stream of their own.
			for _, typ := range domain.EventTypes() {
				if _, ok := domain.WorkspaceOf(typ.Zero()); ok && typ.Name != "UserLoggedIn" && counts[typ.Name] == 0 {
					t.Errorf("the stream recorded no %s, want every kind of workspace event (counts: %v)", typ.Name, counts)
				}
			}
			t.Logf("%d events: %v", len(s.history), counts)
			if len(s.history) < 500 {
				t.Fatalf("the stream recorded %d events, want a long one (at least 500)", len(s.history))
			}

			decoded := make([]domain.Event, len(s.history))
			for i, e := range s.history {
				data, err := domain.EncodeEvent(e)
				if err != nil {
					t.Fatalf("EncodeEvent(%T): %v", e, err)
				}
				if decoded[i], err = domain.DecodeEvent(domain.EventName(e), domain.SchemaVersion, data); err != nil {
					t.Fatalf("DecodeEvent(%s): %v", domain.EventName(e), err)
				}
			}
			ids := idsIn(s.history)
			for name, events := range map[string][]domain.Event{"replayed": s.history, "decoded and replayed": decoded} {
				fresh := replayed(events)
				sameState(t, "of the committed workspace vs "+name, s.w, fresh, ids)
				sameDecisions(t, name, s, fresh)
			}
		})
	}
}

// sameDecisions checks that the committed and the replayed workspace decide
// alike on what state comparisons cannot see: links of closed invitations,
// the rate-limit log and due expiries.
func sameDecisions(t *testing.T, name string, s *stream, fresh *domain.Workspace) {
	t.Helper()
	for _, tk := range s.tokens {
		_, e1 := s.w.Invitation(tk, s.now)
		_, e2 := fresh.Invitation(tk, s.now)
		if domain.ErrorCode(e1) != domain.ErrorCode(e2) {
			t.Fatalf("%s: link of %s: committed answers %v, replayed answers %v", name, tk.InvitationID, e1, e2)
		}
	}
	for _, at := range []time.Time{s.now, s.now.Add(day), s.now.Add(10 * day)} {
		n1, n2 := s.w.ExpireInvitations(at), fresh.ExpireInvitations(at)
		if n1 != n2 || !diffEvents(t, fresh.Pending(), s.w.Pending()) {
			t.Fatalf("%s: ExpireInvitations(%v): committed %d, replayed %d", name, at, n1, n2)
		}
		s.w.Discard()
		fresh.Discard()
		g1, g2 := s.w.ExpireRoleGrants(at), fresh.ExpireRoleGrants(at)
		if g1 != g2 || !diffEvents(t, fresh.Pending(), s.w.Pending()) {
			t.Fatalf("%s: ExpireRoleGrants(%v): committed %d, replayed %d", name, at, g1, g2)
		}
		s.w.Discard()
		fresh.Discard()
	}
	var actor person
	for _, p := range s.pool {
		if m, ok := s.w.Member(p.id); ok && m.Status == domain.StatusActive && m.Role == domain.RoleAdmin {
			actor = p
			break
		}
	}
	entries, err := domain.ParseBatch("late1@example.com, late2@example.com, late3@example.com")
	if err != nil {
		t.Fatalf("ParseBatch: %v", err)
	}
	accounts := map[domain.Email]uuid.UUID{}
	for i, e := range entries {
		accounts[e.Email] = uuid.MustParse(fmt.Sprintf("0f000000-0000-4000-8000-%012d", i))
	}
	for _, limits := range []domain.InviteLimits{{PerWorkspace: 1}, {PerInviter: 1}, {PerWorkspace: 60, PerInviter: 25}} {
		b := func() domain.InviteBatch {
			return domain.InviteBatch{
				Actor: actor.id, Role: domain.RoleEditor, Entries: entries, UserIDs: accounts,
				Now: s.now, TTL: day, Limits: limits, NewInvitation: newInvitations(5000),
			}
		}
		r1, e1 := s.w.Invite(b())
		r2, e2 := fresh.Invite(b())
		var rt1, rt2 time.Time
		if de, ok := e1.(*domain.Error); ok {
			rt1 = de.RetryAt
		}
		if de, ok := e2.(*domain.Error); ok {
			rt2 = de.RetryAt
		}
		if domain.ErrorCode(e1) != domain.ErrorCode(e2) || !rt1.Equal(rt2) || len(r1) != len(r2) {
			t.Fatalf("%s: Invite with limits %+v: committed answers %v (retry %v), replayed answers %v (retry %v)", name, limits, e1, rt1, e2, rt2)
		}
		if !diffEvents(t, fresh.Pending(), s.w.Pending()) {
			t.FailNow()
		}
		s.w.Discard()
		fresh.Discard()
	}
}
