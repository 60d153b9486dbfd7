package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// TestTemporaryRoleEndsOnceAsTheSystem: a role given until a time comes
// back at that time through the expiry command, recorded once, by the
// system; an end that is not in the future is refused about until.
func TestTemporaryRoleEndsOnceAsTheSystem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ws, pat := e.ownerWith("pat@x.com", "Monitor")
	change := func(until time.Time) error {
		_, err := e.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: ws.WorkspaceID, UserID: pat, Role: "Manager", Until: until, Meta: as(ws.OwnerUserID)})
		return err
	}
	err := change(e.clock.Now())
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalidInput || de.Field != "until" {
		t.Fatalf("until now: got %v, want invalid_input about until", err)
	}
	until := e.clock.Now().Add(time.Hour)
	if err := change(until); err != nil {
		t.Fatal(err)
	}
	expire := func() commands.ExpireInvitationsResult {
		t.Helper()
		res, err := e.app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: ws.WorkspaceID, Meta: commands.Meta{CorrelationID: "expiry"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := expire(); res.RoleGrants != 0 {
		t.Fatalf("before the end: %d grants ended, want 0", res.RoleGrants)
	}
	e.clock.Add(time.Hour)
	if res := expire(); res.RoleGrants != 1 {
		t.Fatalf("at the end: %d grants ended, want 1", res.RoleGrants)
	}
	if res := expire(); res.RoleGrants != 0 {
		t.Fatalf("again: %d grants ended, want 0", res.RoleGrants)
	}
	evs := streamEvents(t, e.store, eventstore.WorkspaceStream(ws.WorkspaceID))
	last := evs[len(evs)-1]
	got, ok := last.Event.(domain.RoleGrantExpired)
	if !ok || got.UserID != pat || got.FromRole != "Manager" || got.ToRole != "Monitor" || !got.Until.Equal(until) {
		t.Fatalf("the stream ends with %#v, want pat's RoleGrantExpired Manager → Monitor at %v", last.Event, until)
	}
	if !last.Metadata.Actor.System {
		t.Errorf("RoleGrantExpired metadata %+v, want the system as actor", last.Metadata)
	}
	n := 0
	for _, ev := range evs {
		if _, ok := ev.Event.(domain.RoleGrantExpired); ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d RoleGrantExpired events, want 1", n)
	}
}
