package domain_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/usersd/usersd/domain"
)

func TestRecordEmailOutcome(t *testing.T) {
	t.Parallel()
	pending := evs(team(), invited(20, nora, domain.RoleEditor))
	sent := func(n, attempt int) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error { w.RecordEmailSent(invID(n), attempt); return nil }
	}
	failed := func(n, attempt int, reason string) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error { w.RecordEmailFailed(invID(n), attempt, reason); return nil }
	}
	sentEvent := func(attempt int) domain.InvitationEmailSent {
		return domain.InvitationEmailSent{WorkspaceID: wsID, InvitationID: invID(20), UserID: nora.id, Attempt: attempt}
	}
	failedEvent := func(attempt int, reason string) domain.InvitationEmailFailed {
		return domain.InvitationEmailFailed{WorkspaceID: wsID, InvitationID: invID(20), UserID: nora.id, Attempt: attempt, Reason: reason}
	}
	resentOnce := evs(pending, resent(20, nora, 2, 30, owner, t0))
	runSpecs(t, []spec{
		{name: "sent, first attempt", given: pending, when: sent(20, 1), then: evs(sentEvent(1))},
		{name: "failed, first attempt", given: pending, when: failed(20, 1, "mailbox full"), then: evs(failedEvent(1, "mailbox full"))},
		{
			name:  "long reason is cut to 500 bytes",
			given: pending,
			when:  failed(20, 1, strings.Repeat("x", 600)),
			then:  evs(failedEvent(1, strings.Repeat("x", 500)+"…")),
		},
		{
			// A cut must not split a character: the stored (JSON) form of
			// the reason must be the reason recorded.
			name:  "long reason is cut between characters",
			given: pending,
			when:  failed(20, 1, strings.Repeat("x", 499)+strings.Repeat("é", 10)),
			then:  evs(failedEvent(1, strings.Repeat("x", 499)+"…")),
			check: func(t *testing.T, _ *domain.Workspace) {
				// A fresh workspace: the one given already has this
				// attempt's outcome, and a second one records nothing.
				w := domain.NewWorkspace(wsID)
				w.Replay(pending...)
				w.RecordEmailFailed(invID(20), 1, strings.Repeat("€", 300))
				e := w.Pending()[0].(domain.InvitationEmailFailed)
				if !utf8.ValidString(e.Reason) || e.Reason != strings.Repeat("€", 166)+"…" {
					t.Fatalf("Reason: got %q, want 166 whole euro signs and an ellipsis", e.Reason)
				}
				data, err := domain.EncodeEvent(e)
				if err != nil {
					t.Fatalf("EncodeEvent: %v", err)
				}
				back, err := domain.DecodeEvent(domain.EventName(e), domain.SchemaVersion, data)
				if err != nil || back != domain.Event(e) {
					t.Fatalf("stored and decoded: got %+v, %v, want the recorded event %+v", back, err, e)
				}
			},
		},
		{name: "sent, current attempt after a resend", given: resentOnce, when: sent(20, 2), then: evs(sentEvent(2))},
		{name: "failed, current attempt after a resend", given: resentOnce, when: failed(20, 2, "bounced"), then: evs(failedEvent(2, "bounced"))},
		{name: "sent, stale attempt", given: resentOnce, when: sent(20, 1)},
		{name: "failed, stale attempt", given: resentOnce, when: failed(20, 1, "bounced")},
		{name: "sent, attempt from the future", given: pending, when: sent(20, 2)},
		{name: "sent, expired invitation still counts", given: evs(pending, expired(20, nora, t0)), when: sent(20, 1), then: evs(sentEvent(1))},
		{name: "sent, revoked invitation", given: evs(pending, revoked(20, nora, domain.RoleEditor)), when: sent(20, 1)},
		{name: "failed, revoked invitation", given: evs(pending, revoked(20, nora, domain.RoleEditor)), when: failed(20, 1, "bounced")},
		{name: "sent, accepted invitation", given: evs(pending, acceptedNow(20, nora, "Nora", domain.RoleEditor)), when: sent(20, 1)},
		{
			name:  "sent, invitation replaced after expiry",
			given: evs(team(), invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-8*day)), invitedAt(21, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0)),
			when:  sent(20, 1),
		},
		{name: "sent, unknown invitation", given: pending, when: sent(99, 1)},
		{name: "sent twice: the first outcome stands", given: evs(pending, sentEvent(1)), when: sent(20, 1)},
		{name: "failed after sent: the first outcome stands", given: evs(pending, sentEvent(1)), when: failed(20, 1, "bounced")},
		{name: "sent after a resend of a sent attempt", given: evs(pending, sentEvent(1), resent(20, nora, 2, 30, owner, t0)), when: sent(20, 2), then: evs(sentEvent(2))},
	})
}

func expiredNow(n int, p person) domain.InvitationExpired { return expired(n, p, t0) }

func TestExpireInvitations(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) time.Time { return t0.Add(d - week) } // an invitation sent then expires at t0+d
	many := evs(team(),
		invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, at(-day)),     // due a day ago
		invitedAt(21, ned, domain.RoleEditor, owner, domain.RoleAdmin, at(-3*day)),    // due three days ago
		invitedAt(22, nia, domain.RoleEditor, owner, domain.RoleAdmin, at(hour)),      // due in an hour
		invitedAt(23, nell, domain.RoleEditor, owner, domain.RoleAdmin, at(0)),        // due exactly now
		invitedAt(24, outsider, domain.RoleEditor, owner, domain.RoleAdmin, at(-day)), // due a day ago, larger id
		invitedAt(25, admin2, domain.RoleEditor, owner, domain.RoleAdmin, at(-9*day)), // accepted: not pending
		acceptedAt(25, admin2, domain.RoleEditor, at(-9*day).Add(hour)),               //
		invitedAt(26, person{id: invID(926), email: "gone@example.com"}, domain.RoleEditor, owner, domain.RoleAdmin, at(-9*day)),
		revoked(26, person{id: invID(926), email: "gone@example.com"}, domain.RoleEditor), // revoked: not pending
	)
	expire := func(now time.Time, want int) func(*domain.Workspace) error {
		return func(w *domain.Workspace) error {
			if got := w.ExpireInvitations(now); got != want {
				return &domain.Error{Code: "test_mismatch", Message: "ExpireInvitations answered a wrong count"}
			}
			return nil
		}
	}
	runSpecs(t, []spec{
		{
			name:  "only due ones, oldest first, ties by id",
			given: many,
			when:  expire(t0, 4),
			then:  evs(expiredNow(21, ned), expiredNow(20, nora), expiredNow(24, outsider), expiredNow(23, nell)),
			check: func(t *testing.T, w *domain.Workspace) {
				if n := w.ExpireInvitations(t0); n != 0 || len(w.Pending()) != 0 {
					t.Fatalf("ExpireInvitations again after Commit: got %d and %d events, want 0 and none", n, len(w.Pending()))
				}
				for _, p := range []person{ned, nora, outsider, nell} {
					if m, _ := w.Member(p.id); m.Invitation == nil || !m.Invitation.Expired || m.Status != domain.StatusInvited {
						t.Fatalf("Member(%s): got %+v, want an invitation still pending and marked expired", p.email, m)
					}
				}
				if m, _ := w.Member(nia.id); m.Invitation.Expired {
					t.Fatalf("Member(%s).Invitation.Expired: got true, want false (due in an hour)", nia.email)
				}
				if next, ok := w.NextExpiry(); !ok || !next.Equal(t0.Add(hour)) {
					t.Fatalf("NextExpiry: got %v %v, want %v", next, ok, t0.Add(hour))
				}
			},
		},
		{
			name:  "an hour later the last one is due",
			given: evs(many, expiredNow(21, ned), expiredNow(20, nora), expiredNow(24, outsider), expiredNow(23, nell)),
			when:  expire(t0.Add(hour), 1),
			then:  evs(expired(22, nia, t0.Add(hour))),
			check: func(t *testing.T, w *domain.Workspace) {
				if next, ok := w.NextExpiry(); ok {
					t.Fatalf("NextExpiry: got %v, want none when every pending invitation is marked expired", next)
				}
			},
		},
		{name: "nothing due", given: evs(team(), invited(20, nora, domain.RoleEditor)), when: expire(t0, 0)},
		{name: "no invitations", given: team(), when: expire(t0, 0)},
		{
			name:  "a resent invitation is due at its new time",
			given: evs(team(), invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, at(-day)), resent(20, nora, 2, 30, owner, t0.Add(-hour))),
			when:  expire(t0, 0),
		},
	})
}

func TestNextExpiry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		given []domain.Event
		want  time.Time
		found bool
	}{
		{name: "no workspace"},
		{name: "no invitations", given: team()},
		{name: "one", given: evs(team(), invited(20, nora, domain.RoleEditor)), want: t0.Add(-hour + week), found: true},
		{
			name: "the earliest",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-hour)),
				invitedAt(21, ned, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-5*day)),
				invitedAt(22, nia, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-2*day))),
			want: t0.Add(-5*day + week), found: true,
		},
		{
			name: "past due but not marked yet",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-hour)),
				invitedAt(21, ned, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-10*day))),
			want: t0.Add(-10*day + week), found: true,
		},
		{
			name: "marked expired ones are skipped",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-hour)),
				invitedAt(21, ned, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-10*day)),
				expired(21, ned, t0.Add(-3*day))),
			want: t0.Add(-hour + week), found: true,
		},
		{
			name: "after a resend, the new expiry",
			given: evs(team(),
				invitedAt(20, nora, domain.RoleEditor, owner, domain.RoleAdmin, t0.Add(-10*day)),
				expired(20, nora, t0.Add(-3*day)),
				resent(20, nora, 2, 30, owner, t0)),
			want: t0.Add(week), found: true,
		},
		{
			name:  "revoked and accepted ones are gone",
			given: evs(team(), invited(20, nora, domain.RoleEditor), revoked(20, nora, domain.RoleEditor), invited(21, ned, domain.RoleEditor), acceptedNow(21, ned, "Ned", domain.RoleEditor)),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, found := replayed(c.given).NextExpiry()
			if found != c.found || !got.Equal(c.want) {
				t.Fatalf("NextExpiry: got %v, %v, want %v, %v", got, found, c.want, c.found)
			}
		})
	}
}
