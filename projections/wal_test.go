package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/projectionstest"
)

// TestReadModelsWriteWithoutLocksOrSpeculation: the read models' runners,
// one event per batch, write their rows and move their checkpoints with
// plain inserts and updates. An INSERT ... ON CONFLICT would add a
// confirmation record to the WAL for each row it inserts and a lock record
// for each row it updates; the live runners do it for every invitation
// (docs/per-invitation.md). The window opens once every checkpoint exists,
// so each batch after it moves a stored checkpoint.
func TestReadModelsWriteWithoutLocksOrSpeculation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	models := readModels()
	for _, p := range models {
		start(t, projections.NewRunner(e.pool, p, e.src, projections.RunnerOptions{Logger: testLogger(t), BatchSize: 1}))
	}
	at := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	ws, owner, user, inv := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	appendOne := func(stream string, ev domain.Event) domain.Position {
		t.Helper()
		at = at.Add(time.Minute)
		d, err := testCodec.EncodeOne(ctx, ev, domain.Metadata{
			EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: at, Actor: domain.Actor{UserID: owner},
		})
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.store.Append(ctx, stream, eventstore.Any{}, d)
		if err != nil {
			t.Fatal(err)
		}
		return r.Position
	}
	waitAll := func(pos domain.Position) {
		t.Helper()
		for _, p := range models {
			e.waitCheckpoint(t, p.Name(), pos)
		}
	}
	wsStream := "workspace-" + ws.String()
	waitAll(appendOne(wsStream, domain.WorkspaceCreated{WorkspaceID: ws, Name: "Acme", OwnerUserID: owner, OwnerEmail: "owner@example.com", OwnerName: "Owner", CreatedAt: at}))

	window := projectionstest.StartWAL(t, e.url)
	appendOne("account-"+user.String(), domain.AccountRegistered{UserID: user, Email: "new@example.com"})
	appendOne(wsStream, domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: "new@example.com", Role: "Editor",
		InvitedBy: owner, InviterRole: "Admin", InvitedAt: at, ExpiresAt: at.Add(7 * 24 * time.Hour)})
	appendOne(wsStream, domain.InvitationEmailSent{WorkspaceID: ws, InvitationID: inv, UserID: user, Attempt: 1})
	appendOne(wsStream, domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: "new@example.com", Name: "New", Role: "Editor", AcceptedAt: at})
	appendOne(wsStream, domain.UserLoggedIn{WorkspaceID: ws, UserID: user, LoggedInAt: at})
	waitAll(appendOne(wsStream, domain.UserLoggedIn{WorkspaceID: ws, UserID: user, LoggedInAt: at.Add(time.Hour)}))
	cost, err := window.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tables := []string{"projection_checkpoints"}
	for _, p := range models {
		tables = append(tables, p.Tables()...)
	}
	for _, name := range tables {
		if c := cost.Tables[name]; c != nil && (c.Locked != 0 || c.Confirmed != 0) {
			t.Errorf("%s: %d rows locked, %d speculative insertions confirmed, want none: %+v", name, c.Locked, c.Confirmed, *c)
		}
	}
	// What the window saw: rows inserted, then updated by later batches,
	// and each batch's checkpoint moved.
	for name, want := range map[string]struct{ inserted, updated int }{
		"userlist_users":         {1, 2},
		"userlist_logins":        {1, 1},
		"memberships":            {1, 0},
		"memberships_accounts":   {1, 0},
		"audit_user_emails":      {1, 0},
		"projection_checkpoints": {0, 6 * len(models)},
	} {
		c := cost.Tables[name]
		if c == nil || c.Inserted < want.inserted || c.Updated < want.updated {
			t.Errorf("%s: got %+v, want at least %d inserted, %d updated", name, c, want.inserted, want.updated)
		}
	}
}
