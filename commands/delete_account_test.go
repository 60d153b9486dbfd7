package commands_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// storeDirectory is a PersonDirectory folded from every event of the store
// (the read models do the same in PostgreSQL): it reads the store to its
// end on each call, so it is never behind.
type storeDirectory struct{ store eventstore.Store }

func (d storeDirectory) Person(ctx context.Context, user uuid.UUID) (commands.Person, error) {
	var p commands.Person
	in := map[uuid.UUID]bool{}
	var order []uuid.UUID
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := errors.New("caught up")
	err := d.store.SubscribeToAll(ctx, domain.Position{}, eventstore.SubscribeOptions{}, func(_ context.Context, b eventstore.Batch) error {
		for _, r := range b.Events {
			rec, err := testCodec.DecodeOne(ctx, r)
			if err != nil {
				return err
			}
			ws, _ := domain.WorkspaceOf(rec.Event)
			set := func(who uuid.UUID, v bool) {
				if who != user {
					return
				}
				if v && !slices.Contains(order, ws) {
					order = append(order, ws)
				}
				in[ws] = v
			}
			switch e := rec.Event.(type) {
			case domain.AccountRegistered:
				p.Registered = p.Registered || e.UserID == user
			case domain.AccountDeleted:
				p.Deleted = p.Deleted || e.UserID == user
			case domain.WorkspaceCreated:
				set(e.OwnerUserID, true)
			case domain.UserInvited:
				set(e.UserID, true)
			case domain.MemberRemoved:
				set(e.UserID, false)
			case domain.InvitationRevoked:
				set(e.UserID, false)
			}
		}
		if b.CaughtUp {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		return p, err
	}
	for _, ws := range order {
		if in[ws] {
			p.Workspaces = append(p.Workspaces, ws)
		}
	}
	return p, nil
}

// shredder is the MemoryKeyring seen through the KeyShredder port.
type shredder struct{ keys *pii.MemoryKeyring }

func (s shredder) Destroy(ctx context.Context, user uuid.UUID) (time.Time, error) {
	return time.Now(), s.keys.Destroy(ctx, user)
}

func newDeletionEnv(t *testing.T) (*env, *pii.MemoryKeyring) {
	e := newEnv(t)
	keys := testKeys // the codec's: a destroyed key erases what it sealed
	e.deps.People = storeDirectory{e.store}
	e.deps.Deleter = e.deps.Accounts.(*eventstore.Accounts)
	e.deps.Keys = shredder{keys: keys}
	e.build()
	return e, keys
}

// streamEvents decodes one stream's events.
func streamEvents(t *testing.T, s eventstore.Store, stream string) []domain.RecordedEvent {
	t.Helper()
	raw, err := s.ReadStream(context.Background(), stream, eventstore.ReadOptions{})
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return decodeAll(t, raw)
}

func TestDeleteAccountLeavesEveryWorkspaceAndErasesTheKey(t *testing.T) {
	t.Parallel()
	e, keys := newDeletionEnv(t)
	ctx := context.Background()
	a := e.createWorkspace("olga@example.com")
	b := e.createWorkspace("bob@example.com")
	ann := e.join(a.WorkspaceID, a.OwnerUserID, "ann@example.com", "Editor")
	inv := e.invite(b.WorkspaceID, b.OwnerUserID, "Monitor", "ann@example.com")
	if inv.Results[0].UserID != ann {
		t.Fatalf("the same address got another id in workspace b")
	}
	if _, err := keys.Ensure(ctx, []uuid.UUID{ann}); err != nil {
		t.Fatal(err)
	}

	e.clock.Add(time.Minute)
	res, err := e.app.Commands.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: ann, Meta: e.system})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if res.UserID != ann || !res.ErasedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("got %+v, want user %s erased at %s", res, ann, t0.Add(time.Minute))
	}
	last := func(ws uuid.UUID) domain.Event {
		evs := streamEvents(t, e.store, eventstore.WorkspaceStream(ws))
		return evs[len(evs)-1].Event
	}
	if got, ok := last(a.WorkspaceID).(domain.MemberRemoved); !ok || got.UserID != ann || got.Reason != domain.ReasonAccountDeleted {
		t.Errorf("workspace a ends with %#v, want ann's MemberRemoved for account_deleted", last(a.WorkspaceID))
	}
	if got, ok := last(b.WorkspaceID).(domain.InvitationRevoked); !ok || got.UserID != ann || got.Reason != domain.ReasonAccountDeleted {
		t.Errorf("workspace b ends with %#v, want ann's InvitationRevoked for account_deleted", last(b.WorkspaceID))
	}
	person := streamEvents(t, e.store, eventstore.PersonPrefix+ann.String())
	if len(person) != 1 || person[0].Position != res.Position {
		t.Fatalf("person stream: %d events (position %v), want one AccountDeleted at %v", len(person), person, res.Position)
	}
	if !person[0].Metadata.Actor.System || person[0].Metadata.CorrelationID != "corr-1" {
		t.Errorf("AccountDeleted metadata %+v, want the system's, with the command's correlation", person[0].Metadata)
	}
	if _, err := keys.Ensure(ctx, []uuid.UUID{ann}); !errors.Is(err, pii.ErrErased) {
		t.Errorf("ann's key after deletion: got %v, want %v", err, pii.ErrErased)
	}

	// Again: the same answer, nothing new recorded.
	e.clock.Add(time.Hour)
	again, err := e.app.Commands.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: ann, Meta: e.system})
	if err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if again != res {
		t.Errorf("again: got %+v, want %+v", again, res)
	}
	if n := len(streamEvents(t, e.store, eventstore.PersonPrefix+ann.String())); n != 1 {
		t.Errorf("person stream holds %d events after a repeat, want 1", n)
	}
}

// A person in more workspaces than one deletion changes at once leaves
// every one of them, each exactly once.
func TestDeleteAccountLeavesManyWorkspaces(t *testing.T) {
	t.Parallel()
	e, _ := newDeletionEnv(t)
	ctx := context.Background()
	const n = 21
	var wss []uuid.UUID
	var ann uuid.UUID
	for i := range n {
		w := e.createWorkspace(fmt.Sprintf("owner%d@example.com", i))
		wss = append(wss, w.WorkspaceID)
		if i%2 == 0 {
			ann = e.join(w.WorkspaceID, w.OwnerUserID, "ann@example.com", "Editor")
		} else {
			ann = e.invite(w.WorkspaceID, w.OwnerUserID, "Editor", "ann@example.com").Results[0].UserID
		}
	}
	if _, err := e.app.Commands.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: ann, Meta: e.system}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	for i, ws := range wss {
		removals := 0
		for _, r := range streamEvents(t, e.store, eventstore.WorkspaceStream(ws)) {
			switch ev := r.Event.(type) {
			case domain.MemberRemoved:
				if ev.UserID == ann && ev.Reason == domain.ReasonAccountDeleted && i%2 == 0 {
					removals++
				}
			case domain.InvitationRevoked:
				if ev.UserID == ann && ev.Reason == domain.ReasonAccountDeleted && i%2 == 1 {
					removals++
				}
			}
		}
		if removals != 1 {
			t.Errorf("workspace %d holds %d removals of ann for account_deleted, want 1", i, removals)
		}
	}
}

func TestDeleteAccountRefusesTheLastAdminChangingNothing(t *testing.T) {
	t.Parallel()
	e, keys := newDeletionEnv(t)
	ctx := context.Background()
	a := e.createWorkspace("olga@example.com")
	b := e.createWorkspace("bob@example.com")
	c := e.createWorkspace("carl@example.com")
	olga := a.OwnerUserID
	e.join(b.WorkspaceID, b.OwnerUserID, "olga@example.com", "Editor")
	// Olga is the last Admin of a and of c (c's owner gives her Admin and leaves).
	e.join(c.WorkspaceID, c.OwnerUserID, "olga@example.com", "Admin")
	if _, err := e.app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: c.WorkspaceID, UserID: c.OwnerUserID, Meta: as(olga)}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Ensure(ctx, []uuid.UUID{olga}); err != nil {
		t.Fatal(err)
	}
	before := len(streamEvents(t, e.store, eventstore.WorkspaceStream(b.WorkspaceID)))

	_, err := e.app.Commands.DeleteAccount.Handle(ctx, commands.DeleteAccount{UserID: olga, Meta: e.system})
	var last *commands.LastAdminError
	if !errors.As(err, &last) || domain.ErrorCode(err) != domain.CodeLastAdmin {
		t.Fatalf("got %v, want a LastAdminError with code %q", err, domain.CodeLastAdmin)
	}
	want := []uuid.UUID{a.WorkspaceID, c.WorkspaceID}
	if !slices.Equal(last.Workspaces, want) {
		t.Errorf("workspaces %v, want %v", last.Workspaces, want)
	}
	if after := len(streamEvents(t, e.store, eventstore.WorkspaceStream(b.WorkspaceID))); after != before {
		t.Errorf("workspace b has %d events after the refusal, want %d: nothing may change", after, before)
	}
	if _, err := e.store.ReadStream(ctx, eventstore.PersonPrefix+olga.String(), eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Errorf("person stream after a refusal: %v, want none", err)
	}
	if _, err := keys.Ensure(ctx, []uuid.UUID{olga}); err != nil {
		t.Errorf("olga's key after a refusal: %v, want it kept", err)
	}
}

func TestDeleteAccountOfAnUnknownID(t *testing.T) {
	t.Parallel()
	e, _ := newDeletionEnv(t)
	e.createWorkspace("olga@example.com")
	_, err := e.app.Commands.DeleteAccount.Handle(context.Background(), commands.DeleteAccount{UserID: uuid.New(), Meta: e.system})
	if domain.ErrorCode(err) != domain.CodeAccountNotFound {
		t.Fatalf("got %v, want code %q", err, domain.CodeAccountNotFound)
	}
}

func TestDeleteAccountWithoutItsPorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.app.Commands.DeleteAccount.Handle(context.Background(), commands.DeleteAccount{UserID: uuid.New(), Meta: e.system}); err == nil {
		t.Fatal("an application without the deletion's ports deleted: want an error")
	}
}
