package memberships_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/memberships"
)

// erased marks the history's last event as read after its subject's key
// was destroyed: its personal values read as "".
func (h *history) erased(subject uuid.UUID) {
	h.events[len(h.events)-1].Erased = []uuid.UUID{subject}
}

// annJoinsBob records the opening the account tests share: ann and bob
// register, bob creates ws ("Acme") and ann joins it as an Editor.
func (h *history) annJoinsBob(ws, ann, bob uuid.UUID) {
	h.add(domain.AccountRegistered{UserID: ann, Email: "ann@example.com"})
	h.add(domain.AccountRegistered{UserID: bob, Email: "bob@example.com"})
	h.create(ws, bob, "Acme")
	h.join(ws, ann, domain.RoleEditor)
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	h := &history{}
	ann, bob, cy, ann2 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	ws := uuid.New()
	h.annJoinsBob(ws, ann, bob)
	h.add(domain.MemberRemoved{WorkspaceID: ws, UserID: ann, Reason: domain.ReasonAccountDeleted})
	h.add(domain.AccountDeleted{UserID: ann, DeletedAt: t0})
	// cy's registration reads after erasure: no address.
	h.add(domain.AccountRegistered{UserID: cy, Email: ""})
	h.erased(cy)
	h.add(domain.AccountDeleted{UserID: cy, DeletedAt: t0})
	// ann's address, invited again after the erasure, is a new account.
	h.add(domain.AccountRegistered{UserID: ann2, Email: "ann@example.com"})

	other := uuid.New()
	h.create(other, uuid.New(), "Other")
	for range 8 {
		h.join(other, uuid.New(), domain.RoleMonitor)
	}

	// Each batching applied twice: a replayed batch changes nothing.
	pgtest.CheckBatchings(t, pool, memberships.New(), h.events, 2)

	queries(t, pool, "public", func(q *memberships.Queries) {
		a, found, err := q.Account(ctx, ann)
		if err != nil || !found || a.Email != "" || a.DeletedAt == nil || !a.DeletedAt.Equal(t0) {
			t.Errorf("ann: got %+v found=%v err=%v, want deleted at %s without address", a, found, err, t0)
		}
		b, found, err := q.Account(ctx, bob)
		if err != nil || !found || b.Email != "bob@example.com" || b.DeletedAt != nil {
			t.Errorf("bob: got %+v found=%v err=%v, want live with his address", b, found, err)
		}
		if _, found, _ := q.Account(ctx, uuid.New()); found {
			t.Error("a stranger's id is an account")
		}
		for email, wantID := range map[domain.Email]uuid.UUID{"ann@example.com": ann2, "bob@example.com": bob, "cy@example.com": uuid.Nil} {
			id, found, err := q.AccountByEmail(ctx, email)
			if err != nil || id != wantID || found != (wantID != uuid.Nil) {
				t.Errorf("lookup %s: got %s found=%v err=%v, want %s", email, id, found, err, wantID)
			}
		}
		if ms, err := q.ForUser(ctx, ann); err != nil || len(ms) != 0 {
			t.Errorf("ann's memberships after deletion: %v %v, want none", ms, err)
		}
	})
}
