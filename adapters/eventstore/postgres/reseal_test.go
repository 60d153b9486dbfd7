package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// TestResealRewritesClearEvents: events written in clear before sealing
// existed are sealed in place; a person erased meanwhile loses the values
// for good; a second run changes nothing; the service's role cannot do it.
func TestResealRewritesClearEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := pgtest.New(t) // the owner: the maintenance procedure is theirs
	store := postgres.New(pool)
	t.Cleanup(store.Close)
	keys := pii.NewMemoryKeyring()
	codec := eventstore.NewCodec(keys, []byte("the reseal test's stream key...."))
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ws, ada, bob := uuid.New(), uuid.New(), uuid.New()
	plain := func(e domain.Event, meta domain.Metadata) eventstore.EventData {
		data, err := domain.EncodeEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		md, _ := json.Marshal(meta)
		return eventstore.EventData{ID: meta.EventID, Type: domain.EventName(e), Data: data, Metadata: md}
	}
	meta := func(actor uuid.UUID, email string) domain.Metadata {
		return domain.Metadata{EventID: uuid.New(), SchemaVersion: 1, OccurredAt: at, Actor: domain.Actor{UserID: actor, Email: email},
			Request: &domain.RequestContext{IP: "192.0.2.44", UserAgent: "curl/8.1"}}
	}
	created := domain.WorkspaceCreated{WorkspaceID: ws, Name: "Clear", OwnerUserID: ada, OwnerEmail: "ada.lovelace@clear.test", OwnerName: "Ada Lovelace", CreatedAt: at}
	invited := domain.UserInvited{WorkspaceID: ws, InvitationID: uuid.New(), UserID: bob, Email: "bob.babbage@clear.test", Role: "Editor",
		InvitedBy: ada, InviterRole: "Admin", TokenHash: "00", InvitedAt: at, ExpiresAt: at.Add(time.Hour)}
	if _, err := store.Append(ctx, eventstore.WorkspaceStream(ws), eventstore.NoStream{},
		plain(created, meta(ada, "ada.lovelace@clear.test")), plain(invited, meta(ada, "ada.lovelace@clear.test"))); err != nil {
		t.Fatal(err)
	}
	sealedLater, err := codec.EncodeOne(ctx, domain.MemberSuspended{WorkspaceID: ws, UserID: ada, Email: "ada.lovelace@clear.test", Role: "Admin"}, meta(ada, "ada.lovelace@clear.test"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, eventstore.WorkspaceStream(ws), eventstore.Revision(1), sealedLater); err != nil {
		t.Fatal(err)
	}
	if err := keys.Destroy(ctx, bob); err != nil {
		t.Fatal(err)
	}
	before := mustRead(t, store, ws)

	read, rewritten, err := postgres.Reseal(ctx, pool, codec, nil)
	if err != nil || read != 3 || rewritten != 2 {
		t.Fatalf("Reseal: read %d, rewrote %d, %v; want 3 read, the 2 clear ones rewritten", read, rewritten, err)
	}
	var all string
	if err := pool.QueryRow(ctx, `SELECT string_agg(data::text || metadata::text, ' ') FROM events`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ada.lovelace", "Ada Lovelace", "bob.babbage", "192.0.2.44", "curl/8.1"} {
		if strings.Contains(all, s) {
			t.Errorf("after Reseal the events still hold %q", s)
		}
	}
	raw, err := store.ReadStream(ctx, eventstore.WorkspaceStream(ws), eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := codec.Decode(ctx, raw...)
	if err != nil {
		t.Fatal(err)
	}
	if recs[0].Event != created || recs[0].Metadata.Actor.Email != "ada.lovelace@clear.test" || recs[0].Metadata.Request.IP != "192.0.2.44" {
		t.Errorf("resealed event opens as %+v %+v, want it as written", recs[0].Event, recs[0].Metadata)
	}
	if got := recs[1].Event.(domain.UserInvited); got.Email != "" || got.UserID != bob || got.Role != "Editor" {
		t.Errorf("the erased person's clear address: got %+v, want it gone and the rest kept", got)
	}
	if !recs[1].Metadata.OccurredAt.Equal(at) || recs[1].Metadata.EventID != raw[1].ID {
		t.Errorf("Reseal changed the metadata beyond its personal values: %+v", recs[1].Metadata)
	}
	if string(raw[2].Data) != string(before[2].Data) || string(raw[2].Metadata) != string(before[2].Metadata) {
		t.Error("an event already sealed changed")
	}
	if _, rewritten, err := postgres.Reseal(ctx, pool, codec, nil); err != nil || rewritten != 0 {
		t.Errorf("a second Reseal rewrote %d events, %v; want none", rewritten, err)
	}

	login := domain.UserLoggedIn{WorkspaceID: ws, UserID: ada, LoggedInAt: at}
	if _, err := store.Append(ctx, eventstore.LoginsStream(ws), eventstore.NoStream{}, plain(login, meta(ada, "ada.lovelace@clear.test"))); err != nil {
		t.Fatal(err)
	}
	service, _ := pgtest.Service(t, dbURL)
	if _, _, err := postgres.Reseal(ctx, service, codec, nil); err == nil {
		t.Error("the service's role resealed the events: want the append-only guard to refuse it")
	}
}

func mustRead(t *testing.T, s *postgres.Store, ws uuid.UUID) []eventstore.RecordedEvent {
	t.Helper()
	raw, err := s.ReadStream(context.Background(), eventstore.WorkspaceStream(ws), eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
