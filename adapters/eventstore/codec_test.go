package eventstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// testKeys and testCodec are shared by the package's tests, as replicas
// share one keyring: every test draws its own ids, so a key one test
// destroys is no other's.
var (
	testKeys  = pii.NewMemoryKeyring()
	testCodec = eventstore.NewCodec(testKeys, []byte("the tests' stream-name key, 32 B"))
)

// legacyData encodes an event as usersd did before sealing existed: every
// value plain.
func legacyData(t testing.TB, e domain.Event, meta domain.Metadata) eventstore.EventData {
	t.Helper()
	data, err := domain.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	md, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.EventData{ID: meta.EventID, Type: domain.EventName(e), Data: data, Metadata: md}
}

// personMeta is the metadata of a request a person made.
func personMeta(actor uuid.UUID, email string) domain.Metadata {
	return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: now,
		Actor:   domain.Actor{UserID: actor, Email: email},
		Request: &domain.RequestContext{IP: "203.0.113.7", UserAgent: "Firefox/140 (Jane's laptop)"}}
}

func TestCodecReadsEventsWrittenBeforeSealing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := stores(t)["memory"](t)
	jane, admin := uuid.New(), uuid.New()
	reg := domain.AccountRegistered{UserID: jane, Email: "jane@example.com"}
	meta := personMeta(admin, "admin@example.com")
	if _, err := store.Append(ctx, eventstore.LegacyAccountStream("jane@example.com"), eventstore.NoStream{}, legacyData(t, reg, meta)); err != nil {
		t.Fatal(err)
	}
	raw, err := store.ReadStream(ctx, eventstore.LegacyAccountStream("jane@example.com"), eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := testCodec.DecodeOne(ctx, raw[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.Event != reg || rec.Stored.Event != reg || rec.Metadata.Actor.Email != "admin@example.com" || *rec.Metadata.Request != *meta.Request {
		t.Errorf("legacy event: got %+v (stored %+v), metadata %+v, want it as written", rec.Event, rec.Stored.Event, rec.Metadata)
	}
	// A plain value stays readable after its person's key is gone: only a
	// rewrite (docs/erasure.md) can erase it.
	if err := testKeys.Destroy(ctx, jane); err != nil {
		t.Fatal(err)
	}
	if rec, err := testCodec.DecodeOne(ctx, raw[0]); err != nil || rec.Event != reg || len(rec.Erased) != 0 {
		t.Errorf("legacy event after Destroy: got %+v, %v, erased %v", rec.Event, err, rec.Erased)
	}
}

func TestCodecBatchesKeyRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := &countingKeys{Keyring: pii.NewMemoryKeyring()}
	codec := eventstore.NewCodec(keys, []byte("a third stream-name key, 32 B..."))
	var envs []domain.Envelope
	ws := uuid.New()
	for i := range 50 {
		u := uuid.New()
		envs = append(envs, domain.Envelope{Event: domain.MemberSuspended{WorkspaceID: ws, UserID: u, Email: "m" + string(rune('a'+i%26)) + "@x.com", Role: "Viewer"},
			Metadata: personMeta(uuid.New(), "admin@x.com")})
	}
	data, err := codec.Encode(ctx, envs...)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]eventstore.RecordedEvent, len(data))
	for i, d := range data {
		raw[i] = eventstore.RecordedEvent{ID: d.ID, StreamID: "workspace-" + ws.String(), Revision: uint64(i), Type: d.Type, Data: d.Data, Metadata: d.Metadata}
	}
	if _, err := codec.Decode(ctx, raw...); err != nil {
		t.Fatal(err)
	}
	if keys.ensures != 1 || keys.lookups != 1 {
		t.Errorf("50 events: %d Ensure and %d Lookup calls, want one each", keys.ensures, keys.lookups)
	}
	// A batch with nothing sealed needs no key.
	login := domain.UserLoggedIn{WorkspaceID: ws, UserID: uuid.New(), LoggedInAt: now}
	d, err := codec.EncodeOne(ctx, login, stamp(nil, login))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.DecodeOne(ctx, eventstore.RecordedEvent{ID: d.ID, Type: d.Type, Data: d.Data, Metadata: d.Metadata}); err != nil {
		t.Fatal(err)
	}
	if keys.ensures != 1 || keys.lookups != 1 {
		t.Errorf("an event with nothing personal asked the keyring (%d Ensure, %d Lookup in all)", keys.ensures, keys.lookups)
	}
}

type countingKeys struct {
	pii.Keyring
	ensures, lookups int
}

func (k *countingKeys) Ensure(ctx context.Context, s []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	k.ensures++
	return k.Keyring.Ensure(ctx, s)
}

func (k *countingKeys) Lookup(ctx context.Context, s []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	k.lookups++
	return k.Keyring.Lookup(ctx, s)
}

func TestAccountStreamsAreKeyed(t *testing.T) {
	t.Parallel()
	const e = domain.Email("jane@example.com")
	other := eventstore.NewCodec(pii.NewMemoryKeyring(), []byte("a different stream-name key, 32B"))
	names := []string{testCodec.AccountStream(e), other.AccountStream(e), eventstore.LegacyAccountStream(e)}
	for i, n := range names {
		if !strings.HasPrefix(n, eventstore.AccountPrefix) || len(n) != len(eventstore.AccountPrefix)+64 {
			t.Errorf("%q: want account- and 64 hex digits", n)
		}
		for _, m := range names[:i] {
			if n == m {
				t.Errorf("two keys (or none) gave one stream name %q", n)
			}
		}
	}
	if testCodec.AccountStream(e) != testCodec.AccountStream(e) {
		t.Error("one key gave two names")
	}
}

// TestAccountsRegisterAnErasedAddressAnew: after a deletion destroys the
// key, the next invitation of the address reserves a new account, on any
// registry (one that cached the old id, or one reading the store); the
// address's stream then names the new one.
func TestAccountsRegisterAnErasedAddressAnew(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, ctx context.Context, store eventstore.Store) {
		meta := func(e domain.Event) domain.Metadata { return stamp(nil, e) }
		const jane, legacy = domain.Email("jane@example.com"), domain.Email("old@example.com")
		oldLegacy := uuid.New()
		reg := domain.AccountRegistered{UserID: oldLegacy, Email: string(legacy)}
		if _, err := store.Append(ctx, eventstore.LegacyAccountStream(legacy), eventstore.NoStream{}, legacyData(t, reg, stamp(nil, reg))); err != nil {
			t.Fatal(err)
		}
		cached := eventstore.NewAccounts(store, testCodec, 10)
		first, err := cached.Resolve(ctx, []domain.Email{jane, legacy}, uuid.New, meta)
		if err != nil {
			t.Fatal(err)
		}
		if first[legacy] != oldLegacy {
			t.Fatalf("legacy stream: got %s, want %s", first[legacy], oldLegacy)
		}
		for _, id := range first {
			if _, _, err := cached.Delete(ctx, id, stamp(nil, nil), now); err != nil {
				t.Fatal(err)
			}
			if err := testKeys.Destroy(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		again, err := cached.Resolve(ctx, []domain.Email{jane, legacy}, uuid.New, meta)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := eventstore.NewAccounts(store, testCodec, 10).Resolve(ctx, []domain.Email{legacy, jane}, uuid.New, meta)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []domain.Email{jane, legacy} {
			if again[e] == first[e] || again[e] == uuid.Nil {
				t.Errorf("%s after erasure: got %s again, want a new id", e, again[e])
			}
			if fresh[e] != again[e] {
				t.Errorf("%s: a registry that never saw it answers %s, want the new account %s", e, fresh[e], again[e])
			}
		}
		evs, err := store.ReadStream(ctx, testCodec.AccountStream(jane), eventstore.ReadOptions{})
		if err != nil || len(evs) != 2 {
			t.Fatalf("jane's stream: %d events, %v; want the first registration and the new one", len(evs), err)
		}
	})
}

func TestAccountsDeleteIsIdempotent(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, ctx context.Context, store eventstore.Store) {
		accounts := eventstore.NewAccounts(store, testCodec, 10)
		ids, err := accounts.Resolve(ctx, []domain.Email{"gone@example.com"}, uuid.New, func(e domain.Event) domain.Metadata { return stamp(nil, e) })
		if err != nil {
			t.Fatal(err)
		}
		id := ids["gone@example.com"]
		at, pos, err := accounts.Delete(ctx, id, stamp(nil, nil), now)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Equal(now) || pos == (domain.Position{}) {
			t.Errorf("Delete: got %v at %v, want %v and a position", at, pos, now)
		}
		if err := testKeys.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
		at2, pos2, err := eventstore.NewAccounts(store, testCodec, 10).Delete(ctx, id, stamp(nil, nil), now.Add(time.Hour))
		if err != nil || !at2.Equal(at) || pos2 != pos {
			t.Errorf("Delete again: got %v at %v, %v; want the first deletion's %v at %v", at2, pos2, err, at, pos)
		}
		evs, err := store.ReadStream(ctx, eventstore.PersonStream(id), eventstore.ReadOptions{})
		if err != nil || len(evs) != 1 || evs[0].Type != "AccountDeleted" {
			t.Fatalf("person stream: %v, %v; want one AccountDeleted", evs, err)
		}
		if !eventstore.IsOurRecord(evs[0]) {
			t.Error("the person stream is not recognised as ours")
		}
	})
}
