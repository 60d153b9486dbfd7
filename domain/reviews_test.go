package domain_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

var (
	review1 = uuid.MustParse("0d000000-0000-4000-8000-000000000001")
	review2 = uuid.MustParse("0d000000-0000-4000-8000-000000000002")
)

func reviewStarted(id uuid.UUID, items int) domain.AccessReviewStarted {
	return domain.AccessReviewStarted{WorkspaceID: wsID, ReviewID: id, Name: "Q1 review", Items: items, StartedAt: t0}
}

func decided(id uuid.UUID, p person, d domain.ReviewDecision, role domain.Role, comment string) domain.AccessReviewItemDecided {
	return domain.AccessReviewItemDecided{WorkspaceID: wsID, ReviewID: id, UserID: p.id, Decision: string(d), NewRole: string(role), Comment: comment}
}

func startReview(actor person, id uuid.UUID, name string) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.StartAccessReview(actor.id, id, name, t0) }
}

func decide(actor person, id uuid.UUID, p person, d domain.ReviewDecision, role domain.Role, comment string) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.DecideAccessReviewItem(actor.id, id, p.id, d, role, comment) }
}

func completeReview(actor person, id uuid.UUID) func(*domain.Workspace) error {
	return func(w *domain.Workspace) error { return w.CompleteAccessReview(actor.id, id) }
}

// reviewed is team with nora's pending invitation, the Monitor suspended,
// and review1 started over those 6 people.
func reviewed() []domain.Event {
	return evs(team(), invited(10, nora, domain.RoleEditor), suspended(monitor, domain.RoleMonitor), reviewStarted(review1, 6))
}

// keepAllBut decides keep on everyone of reviewed() but the people left out.
func keepAllBut(left ...person) []domain.Event {
	var out []domain.Event
next:
	for _, p := range []person{owner, manager, editor, monitor, agent, nora} {
		for _, l := range left {
			if l.id == p.id {
				continue next
			}
		}
		out = append(out, decided(review1, p, domain.DecisionKeep, "", ""))
	}
	return out
}

func wantReview(t *testing.T, w *domain.Workspace, id uuid.UUID, want domain.ReviewState) {
	t.Helper()
	got, ok := w.Review(id)
	if !ok || got != want {
		t.Fatalf("Review(%s): got %+v (found %v), want %+v", id, got, ok, want)
	}
}

func TestStartAccessReview(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name:  "an Admin starts a review of everyone: members, suspended ones, pending invitations",
			given: evs(team(), invited(10, nora, domain.RoleEditor), suspended(monitor, domain.RoleMonitor)),
			when:  startReview(owner, review1, "  Q1 review "),
			then:  evs(reviewStarted(review1, 6)),
			check: func(t *testing.T, w *domain.Workspace) {
				wantReview(t, w, review1, domain.ReviewState{Name: "Q1 review", Items: 6})
				for _, p := range []person{owner, manager, editor, monitor, agent, nora} {
					if !w.InReview(review1, p.id) {
						t.Errorf("%s is not in the review, want in", p.email)
					}
				}
				if w.InReview(review1, outsider.id) {
					t.Error("an outsider is in the review, want not")
				}
			},
		},
		{name: "a Manager may not", given: team(), when: startReview(manager, review1, "Q1"), wantErr: domain.CodeNotAllowed},
		{name: "an outsider learns nothing", given: team(), when: startReview(outsider, review1, "Q1"), wantErr: domain.CodeWorkspaceNotFound},
		{name: "a name is required", given: team(), when: startReview(owner, review1, "  "), wantErr: domain.CodeInvalidName},
		{name: "a name is at most 200 characters", given: team(), when: startReview(owner, review1, strings.Repeat("x", 201)), wantErr: domain.CodeInvalidName},
		{name: "the same id twice", given: evs(team(), reviewStarted(review1, 5)), when: startReview(owner, review1, "Again"), wantErr: domain.CodeInvalidInput},
		{
			name: "at most 20 open reviews",
			given: func() []domain.Event {
				out := team()
				for i := 0; i < domain.MaxOpenReviews; i++ {
					out = append(out, reviewStarted(uuid.New(), 5))
				}
				return out
			}(),
			when:    startReview(owner, review1, "One too many"),
			wantErr: domain.CodeTooManyOpenReviews,
		},
		{
			name:  "a completed review no longer counts as open",
			given: evs(team(), reviewStarted(review2, 5), domain.AccessReviewCompleted{WorkspaceID: wsID, ReviewID: review2, Items: 5, Kept: 5}),
			when:  startReview(owner, review1, "Q1 review"),
			then:  evs(reviewStarted(review1, 5)),
		},
	})
}

func TestDecideAccessReviewItem(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name:  "keep, with a comment",
			given: reviewed(),
			when:  decide(owner, review1, editor, domain.DecisionKeep, "", " still edits the docs\r\n(ticket 12) "),
			then:  evs(decided(review1, editor, domain.DecisionKeep, "", "still edits the docs\n(ticket 12)")),
			check: func(t *testing.T, w *domain.Workspace) {
				wantReview(t, w, review1, domain.ReviewState{Name: "Q1 review", Items: 6, Decided: 1})
			},
		},
		{
			name:  "change the role: the ordinary change, then the decision",
			given: reviewed(),
			when:  decide(owner, review1, manager, domain.DecisionChangeRole, domain.RoleEditor, ""),
			then: evs(roleChanged(manager, domain.RoleManager, domain.RoleEditor, owner),
				decided(review1, manager, domain.DecisionChangeRole, domain.RoleEditor, "")),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, manager, domain.RoleEditor, domain.StatusActive)
			},
		},
		{
			name:  "the same role again: only the decision",
			given: reviewed(),
			when:  decide(owner, review1, editor, domain.DecisionChangeRole, domain.RoleEditor, ""),
			then:  evs(decided(review1, editor, domain.DecisionChangeRole, domain.RoleEditor, "")),
		},
		{
			name:  "revoke a member: removed",
			given: reviewed(),
			when:  decide(owner, review1, agent, domain.DecisionRevoke, "", "left the company"),
			then:  evs(removed(agent, domain.RoleAgentUser), decided(review1, agent, domain.DecisionRevoke, "", "left the company")),
			check: func(t *testing.T, w *domain.Workspace) {
				if _, ok := w.Member(agent.id); ok {
					t.Error("the agent is still a member, want removed")
				}
				if !w.InReview(review1, agent.id) {
					t.Error("the agent left the review's population, want it frozen")
				}
			},
		},
		{
			name:  "revoke a pending invitation: revoked",
			given: reviewed(),
			when:  decide(owner, review1, nora, domain.DecisionRevoke, "", ""),
			then:  evs(revoked(10, nora, domain.RoleEditor), decided(review1, nora, domain.DecisionRevoke, "", "")),
		},
		{
			name:  "change the role of a pending invitation",
			given: reviewed(),
			when:  decide(owner, review1, nora, domain.DecisionChangeRole, domain.RoleMonitor, ""),
			then: evs(roleChanged(nora, domain.RoleEditor, domain.RoleMonitor, owner),
				decided(review1, nora, domain.DecisionChangeRole, domain.RoleMonitor, "")),
		},
		{
			name:  "revoke a suspended member",
			given: reviewed(),
			when:  decide(owner, review1, monitor, domain.DecisionRevoke, "", ""),
			then:  evs(removed(monitor, domain.RoleMonitor), decided(review1, monitor, domain.DecisionRevoke, "", "")),
		},
		{
			name:    "the last active Admin cannot be revoked: nothing recorded",
			given:   reviewed(),
			when:    decide(owner, review1, owner, domain.DecisionRevoke, "", ""),
			wantErr: domain.CodeLastAdmin,
		},
		{
			name:    "the last active Admin cannot be demoted: nothing recorded",
			given:   reviewed(),
			when:    decide(owner, review1, owner, domain.DecisionChangeRole, domain.RoleEditor, ""),
			wantErr: domain.CodeLastAdmin,
		},
		{
			name:  "someone removed meanwhile may be kept: the decision is recorded",
			given: evs(reviewed(), removed(editor, domain.RoleEditor)),
			when:  decide(owner, review1, editor, domain.DecisionKeep, "", ""),
			then:  evs(decided(review1, editor, domain.DecisionKeep, "", "")),
		},
		{
			name:  "someone removed meanwhile, revoked: nothing left to carry out",
			given: evs(reviewed(), removed(editor, domain.RoleEditor)),
			when:  decide(owner, review1, editor, domain.DecisionRevoke, "", ""),
			then:  evs(decided(review1, editor, domain.DecisionRevoke, "", "")),
		},
		{
			name:    "someone removed meanwhile cannot get another role",
			given:   evs(reviewed(), removed(editor, domain.RoleEditor)),
			when:    decide(owner, review1, editor, domain.DecisionChangeRole, domain.RoleMonitor, ""),
			wantErr: domain.CodeUserNotFound,
		},
		{
			name:  "deciding again replaces the decision",
			given: evs(reviewed(), decided(review1, editor, domain.DecisionKeep, "", "")),
			when:  decide(owner, review1, editor, domain.DecisionRevoke, "", "on second thought"),
			then:  evs(removed(editor, domain.RoleEditor), decided(review1, editor, domain.DecisionRevoke, "", "on second thought")),
			check: func(t *testing.T, w *domain.Workspace) {
				wantReview(t, w, review1, domain.ReviewState{Name: "Q1 review", Items: 6, Decided: 1})
			},
		},
		{
			name:    "someone who joined after the start is not in the review",
			given:   evs(reviewed(), joined(11, ned, domain.RoleEditor)),
			when:    decide(owner, review1, ned, domain.DecisionKeep, "", ""),
			wantErr: domain.CodeNotInReview,
		},
		{name: "an unknown review", given: reviewed(), when: decide(owner, review2, editor, domain.DecisionKeep, "", ""), wantErr: domain.CodeReviewNotFound},
		{
			name:    "a completed review is immutable",
			given:   evs(reviewed(), keepAllBut(), domain.AccessReviewCompleted{WorkspaceID: wsID, ReviewID: review1, Items: 6, Kept: 6}),
			when:    decide(owner, review1, editor, domain.DecisionRevoke, "", ""),
			wantErr: domain.CodeReviewCompleted,
		},
		{name: "a Manager may not decide", given: reviewed(), when: decide(manager, review1, editor, domain.DecisionKeep, "", ""), wantErr: domain.CodeNotAllowed},
		{name: "an unknown decision", given: reviewed(), when: decide(owner, review1, editor, "delete", "", ""), wantErr: domain.CodeInvalidInput},
		{name: "change_role needs a role", given: reviewed(), when: decide(owner, review1, editor, domain.DecisionChangeRole, "", ""), wantErr: domain.CodeInvalidInput},
		{name: "an unknown role", given: reviewed(), when: decide(owner, review1, editor, domain.DecisionChangeRole, "Boss", ""), wantErr: domain.CodeInvalidRole},
		{name: "keep takes no role", given: reviewed(), when: decide(owner, review1, editor, domain.DecisionKeep, domain.RoleAdmin, ""), wantErr: domain.CodeInvalidInput},
		{
			name:    "a comment is at most 1000 characters",
			given:   reviewed(),
			when:    decide(owner, review1, editor, domain.DecisionKeep, "", strings.Repeat("é", 1001)),
			wantErr: domain.CodeInvalidInput,
		},
		{
			name:    "a comment without hidden characters",
			given:   reviewed(),
			when:    decide(owner, review1, editor, domain.DecisionKeep, "", "ok \u202egnp.exe"),
			wantErr: domain.CodeInvalidInput,
			checkErr: func(t *testing.T, err error) {
				if de, _ := err.(*domain.Error); de == nil || de.Field != "comment" {
					t.Errorf("got %v, want an error about comment", err)
				}
			},
		},
	})
}

func TestCompleteAccessReview(t *testing.T) {
	t.Parallel()
	runSpecs(t, []spec{
		{
			name: "every item decided: completed, with the decisions in force counted",
			given: evs(reviewed(), keepAllBut(agent, manager),
				removed(agent, domain.RoleAgentUser), decided(review1, agent, domain.DecisionRevoke, "", ""),
				decided(review1, manager, domain.DecisionKeep, "", ""),
				roleChanged(manager, domain.RoleManager, domain.RoleEditor, owner),
				decided(review1, manager, domain.DecisionChangeRole, domain.RoleEditor, "")),
			when: completeReview(owner, review1),
			then: evs(domain.AccessReviewCompleted{WorkspaceID: wsID, ReviewID: review1, Items: 6, Kept: 4, Changed: 1, Revoked: 1}),
			check: func(t *testing.T, w *domain.Workspace) {
				wantReview(t, w, review1, domain.ReviewState{Name: "Q1 review", Items: 6, Decided: 6, Completed: true})
			},
		},
		{
			name:    "undecided items: refused, saying how many",
			given:   evs(reviewed(), keepAllBut(agent, nora)),
			when:    completeReview(owner, review1),
			wantErr: domain.CodeReviewIncomplete,
			checkErr: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "2 of the review's 6 items") {
					t.Errorf("got %q, want it to say 2 of 6 items are open", err)
				}
			},
		},
		{
			name:    "twice",
			given:   evs(reviewed(), keepAllBut(), domain.AccessReviewCompleted{WorkspaceID: wsID, ReviewID: review1, Items: 6, Kept: 6}),
			when:    completeReview(owner, review1),
			wantErr: domain.CodeReviewCompleted,
		},
		{name: "an unknown review", given: reviewed(), when: completeReview(owner, review2), wantErr: domain.CodeReviewNotFound},
		{name: "an Editor may not", given: evs(reviewed(), keepAllBut()), when: completeReview(editor, review1), wantErr: domain.CodeNotAllowed},
	})
}
