package messaging_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/email/smtptest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// TestTemporaryRolesEndOnceAcrossReplicas: two replicas run the scheduler
// side by side; every temporary role ends exactly once at its time (the
// previous role back, or, for the last active Admin, kept with the refusal
// recorded), and a replica started afterwards records nothing more.
func TestTemporaryRolesEndOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	pool, srv, a, ws := startMailing(t, smtptest.Options{}, replicaOptions{})
	b := startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	ctx := context.Background()
	owner := commands.Meta{Actor: domain.Actor{UserID: ws.OwnerUserID}}

	// heir joins, becomes Admin for a while, and the owner steps down: when
	// heir's grant ends, heir is the last active Admin.
	heirInv := a.invite(t, ws, 0, "heir@example.com")
	eventually(t, "heir's e-mail", func() bool { return len(srv.Messages()) == 1 })
	heir, err := a.app().Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: link(t, srv.Messages()[0]), Name: "Heir"})
	if err != nil {
		t.Fatal(err)
	}
	if heir.UserID != heirInv[0].UserID {
		t.Fatalf("accepted as %s, want %s", heir.UserID, heirInv[0].UserID)
	}
	const n = 10
	res := a.invite(t, ws, 0, addresses("temp%02d@example.com", n)...)
	until := time.Now().Add(3 * time.Second)
	change := func(r *replica, user uuid.UUID, role string, until time.Time, meta commands.Meta) {
		t.Helper()
		if _, err := r.app().Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: user, Role: role, Until: until, Meta: meta}); err != nil {
			t.Fatalf("change %s to %s: %v", user, role, err)
		}
	}
	change(a, heir.UserID, "Admin", until, owner)
	change(b, ws.OwnerUserID, "Editor", time.Time{}, commands.Meta{Actor: domain.Actor{UserID: heir.UserID}})
	for i, r := range res {
		change([]*replica{a, b}[i%2], r.UserID, "Manager", until, commands.Meta{Actor: domain.Actor{UserID: heir.UserID}})
	}
	if since := time.Until(until); since <= 0 {
		t.Skip("the machine was too slow to set up before the grants ended")
	}
	eventually(t, "the user list to show every end", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE role_until IS NOT NULL`) == n+1
	})
	if got := eventCount(t, pool, domain.EventName(domain.RoleGrantExpired{})); got != 0 {
		t.Fatalf("%d grants ended before their time", got)
	}

	expired, refused := domain.EventName(domain.RoleGrantExpired{}), domain.EventName(domain.RoleGrantExpiryRefused{})
	eventually(t, "every grant to end", func() bool {
		return eventCount(t, pool, expired) == n && eventCount(t, pool, refused) == 1
	})
	if early := count(t, pool, `SELECT count(*) FROM events WHERE type IN ($1, $2) AND created_at < $3`, expired, refused, until); early != 0 {
		t.Errorf("%d grants ended before their time %v", early, until)
	}
	eventually(t, "the user list to show the previous roles", func() bool {
		return count(t, pool, `SELECT count(*) FROM userlist_users WHERE role = 'Editor' AND status = 'invited' AND role_until IS NULL`) == n &&
			count(t, pool, `SELECT count(*) FROM userlist_users WHERE role_until IS NOT NULL`) == 0
	})
	if got := count(t, pool, `SELECT count(*) FROM userlist_users WHERE user_id = $1 AND role = 'Admin'`, heir.UserID); got != 1 {
		t.Errorf("heir, the last active Admin: %d Admin rows, want 1 (the role kept)", got)
	}

	// A restart of one replica and a new one: nothing ends twice.
	a.stop()
	startReplica(t, pool, replicaOptions{smtpAddr: srv.Addr})
	time.Sleep(time.Second) // several sweeps (ExpiryMaxSleep is 200 ms)
	if e, r := eventCount(t, pool, expired), eventCount(t, pool, refused); e != n || r != 1 {
		t.Errorf("after a restart: %d RoleGrantExpired, %d RoleGrantExpiryRefused; want %d and 1", e, r, n)
	}
	var reasons []string
	rows, err := pool.Query(ctx, `SELECT data->>'reason' FROM events WHERE type = $1`, refused)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, s)
	}
	if fmt.Sprint(reasons) != "[last_admin]" {
		t.Errorf("refusal reasons %v, want [last_admin]", reasons)
	}
}
