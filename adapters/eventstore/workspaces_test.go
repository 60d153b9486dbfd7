package eventstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// The repository and the account registry are tested on both stores: what
// they rely on (expected revisions, reading from a revision) must hold on
// each.
func stores(t *testing.T) map[string]func(t *testing.T) eventstore.Store {
	return map[string]func(t *testing.T) eventstore.Store{
		"memory": func(t *testing.T) eventstore.Store { return memory.New() },
		"postgres": func(t *testing.T) eventstore.Store {
			pool, _ := pgtest.New(t)
			s := pgstore.New(pool)
			t.Cleanup(s.Close)
			return s
		},
	}
}

// onEachStore runs test, in parallel, on a new store of each kind.
func onEachStore(t *testing.T, test func(t *testing.T, ctx context.Context, store eventstore.Store)) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, context.Background(), newStore(t))
		})
	}
}

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func stamp(_ *domain.Workspace, _ domain.Event) domain.Metadata {
	return domain.Metadata{EventID: uuid.New(), SchemaVersion: domain.SchemaVersion, OccurredAt: now, Actor: domain.Actor{System: true}}
}

func created(t *testing.T, repo *eventstore.Workspaces) (uuid.UUID, uuid.UUID) {
	t.Helper()
	id, owner := uuid.New(), uuid.New()
	w := domain.NewWorkspace(id)
	if err := w.Create("Acme", owner, "owner@example.com", "Owner", now); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Create(context.Background(), w, stamp); err != nil {
		t.Fatalf("create: %v", err)
	}
	return id, owner
}

// grantAdmin sets ManagersMayGrantAdmin through repo, as its owner.
func grantAdmin(ctx context.Context, repo *eventstore.Workspaces, id, owner uuid.UUID, may bool) (domain.Position, error) {
	return repo.Update(ctx, id, func(w *domain.Workspace) error {
		return w.UpdateSettings(owner, domain.Settings{ManagersMayGrantAdmin: may})
	}, stamp)
}

// staleReplica gives a repository b on store and a workspace created
// through another replica a that b cached at revision 0, before a turned
// ManagersMayGrantAdmin off: b's cache is one event behind the store.
func staleReplica(t *testing.T, store eventstore.Store) (b *eventstore.Workspaces, id, owner uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	a, b := eventstore.NewWorkspaces(store, testCodec, 4), eventstore.NewWorkspaces(store, testCodec, 4)
	id, owner = created(t, a)
	if err := b.View(ctx, id, func(*domain.Workspace) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := grantAdmin(ctx, a, id, owner, false); err != nil {
		t.Fatal(err)
	}
	return b, id, owner
}

func TestWorkspaces(t *testing.T) {
	t.Parallel()
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// run runs test in parallel on a new store that counts its
			// stream reads.
			run := func(what string, test func(t *testing.T, ctx context.Context, store *countingStore)) {
				t.Run(what, func(t *testing.T) {
					t.Parallel()
					test(t, context.Background(), &countingStore{Store: newStore(t)})
				})
			}
			run("a second replica catches up from its cached revision", func(t *testing.T, ctx context.Context, store *countingStore) {
				b, id, _ := staleReplica(t, store)
				var got domain.Settings
				if err := b.View(ctx, id, func(w *domain.Workspace) error { got = w.Settings(); return nil }); err != nil {
					t.Fatal(err)
				}
				if got.ManagersMayGrantAdmin {
					t.Errorf("replica b sees ManagersMayGrantAdmin=true, want false (a's change)")
				}
			})
			run("a replica decides on what another replica appended", func(t *testing.T, ctx context.Context, store *countingStore) {
				b, id, owner := staleReplica(t, store)
				// b decides inside Update, after catching up: no conflict.
				if _, err := grantAdmin(ctx, b, id, owner, true); err != nil {
					t.Fatalf("update after catch-up: %v", err)
				}
				events, err := store.ReadStream(ctx, eventstore.WorkspaceStream(id), eventstore.ReadOptions{})
				if err != nil || len(events) != 3 {
					t.Fatalf("stream holds %d events (%v), want 3", len(events), err)
				}
			})
			run("a refusal on a stale cache is decided again on the store's events", func(t *testing.T, ctx context.Context, store *countingStore) {
				b, id, owner := staleReplica(t, store)
				// b's cache still says true; only a's event makes this decision
				// possible.
				refused := errors.New("managers may already grant Admin")
				_, err := b.Update(ctx, id, func(w *domain.Workspace) error {
					if w.Settings().ManagersMayGrantAdmin {
						return refused
					}
					return w.UpdateSettings(owner, domain.Settings{ManagersMayGrantAdmin: true})
				}, stamp)
				if err != nil {
					t.Fatalf("update on a stale cache = %v, want it decided again on the store's events", err)
				}
			})
			run("a warm cache appends without reading the stream first", func(t *testing.T, ctx context.Context, store *countingStore) {
				repo := eventstore.NewWorkspaces(store, testCodec, 4)
				id, owner := created(t, repo)
				for i := range 4 {
					if _, err := grantAdmin(ctx, repo, id, owner, i%2 == 1); err != nil {
						t.Fatal(err)
					}
				}
				if got := store.reads.Load(); got != 0 {
					t.Errorf("4 updates of a cached workspace read the stream %d times, want 0", got)
				}
			})
			run("a decision that records nothing answers the last position", func(t *testing.T, ctx context.Context, store *countingStore) {
				repo := eventstore.NewWorkspaces(store, testCodec, 4)
				id, owner := created(t, repo)
				events, _ := store.ReadStream(ctx, eventstore.WorkspaceStream(id), eventstore.ReadOptions{})
				pos, err := repo.Update(ctx, id, func(w *domain.Workspace) error {
					return w.UpdateSettings(owner, w.Settings()) // unchanged: a no-op
				}, stamp)
				if err != nil || pos != events[0].Position {
					t.Errorf("no-op update = %v, %v; want the last event's position %v", pos, err, events[0].Position)
				}
			})
			run("an unknown workspace is not found and nothing is written", func(t *testing.T, ctx context.Context, store *countingStore) {
				repo := eventstore.NewWorkspaces(store, testCodec, 4)
				id := uuid.New()
				err := repo.View(ctx, id, func(*domain.Workspace) error { return nil })
				if !errors.Is(err, domain.ErrWorkspaceNotFound) {
					t.Errorf("view = %v, want workspace_not_found", err)
				}
				_, err = repo.Update(ctx, id, func(w *domain.Workspace) error { return w.ChangeRole(uuid.New(), uuid.New(), domain.RoleAdmin) }, stamp)
				if !errors.Is(err, domain.ErrWorkspaceNotFound) {
					t.Errorf("update = %v, want workspace_not_found", err)
				}
				if _, err := store.ReadStream(ctx, eventstore.WorkspaceStream(id), eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrStreamNotFound) {
					t.Errorf("read = %v, want the stream not to exist", err)
				}
			})
			run("creating an existing workspace is workspace_exists", func(t *testing.T, ctx context.Context, store *countingStore) {
				a, b := eventstore.NewWorkspaces(store, testCodec, 4), eventstore.NewWorkspaces(store, testCodec, 4)
				id, _ := created(t, a)
				w := domain.NewWorkspace(id)
				_ = w.Create("Again", uuid.New(), "x@example.com", "X", now)
				_, err := b.Create(ctx, w, stamp)
				if domain.ErrorCode(err) != domain.CodeWorkspaceExists {
					t.Errorf("second create = %v, want workspace_exists", err)
				}
			})
			run("more workspaces than the cache holds still work", func(t *testing.T, ctx context.Context, store *countingStore) {
				repo := eventstore.NewWorkspaces(store, testCodec, 2)
				type ws struct{ id, owner uuid.UUID }
				var all []ws
				for range 5 {
					id, owner := created(t, repo)
					all = append(all, ws{id, owner})
				}
				for _, w := range all {
					if _, err := grantAdmin(ctx, repo, w.id, w.owner, false); err != nil {
						t.Fatalf("update %s after eviction: %v", w.id, err)
					}
				}
			})
			run("ids of no workspace evict nothing from the cache", func(t *testing.T, ctx context.Context, store *countingStore) {
				repo := eventstore.NewWorkspaces(store, testCodec, 2)
				// A full cache: two workspaces in a cache of two.
				id, owner := created(t, repo)
				id2, owner2 := created(t, repo)
				// Forged invitation tokens name random workspaces: many
				// more than the cache holds, viewed and updated.
				for range 10 {
					if err := repo.View(ctx, uuid.New(), func(*domain.Workspace) error { return nil }); !errors.Is(err, domain.ErrWorkspaceNotFound) {
						t.Fatalf("view of a random id = %v, want workspace_not_found", err)
					}
					if _, err := grantAdmin(ctx, repo, uuid.New(), owner, false); err == nil {
						t.Fatal("update of a random id succeeded, want an error")
					}
				}
				before := store.reads.Load()
				for _, w := range []struct{ id, owner uuid.UUID }{{id, owner}, {id2, owner2}} {
					if _, err := grantAdmin(ctx, repo, w.id, w.owner, false); err != nil {
						t.Fatal(err)
					}
				}
				if got := store.reads.Load() - before; got != 0 {
					t.Errorf("the real workspaces were read %d times after 20 requests for random ids, want 0: they must still be cached", got)
				}
			})
			run("a new workspace is cached once it exists, also when loaded concurrently", func(t *testing.T, ctx context.Context, store *countingStore) {
				writer, repo := eventstore.NewWorkspaces(store, testCodec, 4), eventstore.NewWorkspaces(store, testCodec, 4)
				id, owner := created(t, writer)
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						if err := repo.View(ctx, id, func(*domain.Workspace) error { return nil }); err != nil {
							t.Errorf("view: %v", err)
						}
					})
				}
				wg.Wait()
				before := store.reads.Load()
				if _, err := grantAdmin(ctx, repo, id, owner, false); err != nil {
					t.Fatal(err)
				}
				if got := store.reads.Load() - before; got != 0 {
					t.Errorf("an update after views read the stream %d times, want 0 (cached by the views)", got)
				}
			})
			run("accounts: one id per address, also across registries", func(t *testing.T, ctx context.Context, store *countingStore) {
				// The store itself, not the counting wrapper, which would hide
				// its StartStreams and LastEvents.
				a, b := eventstore.NewAccounts(store.Store, testCodec, 10), eventstore.NewAccounts(store.Store, testCodec, 10)
				meta := func(domain.Event) domain.Metadata { return stamp(nil, nil) }
				ga, err := a.Resolve(ctx, []domain.Email{"p@x.com", "q@x.com"}, uuid.New, meta)
				if err != nil {
					t.Fatal(err)
				}
				gb, err := b.Resolve(ctx, []domain.Email{"q@x.com", "p@x.com"}, uuid.New, meta)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range []domain.Email{"p@x.com", "q@x.com"} {
					if ga[e] != gb[e] || ga[e] == uuid.Nil {
						t.Errorf("%s: ids %s and %s, want one id", e, ga[e], gb[e])
					}
				}
				if ga["p@x.com"] == ga["q@x.com"] {
					t.Errorf("two addresses share id %s", ga["p@x.com"])
				}
			})
		})
	}
}

var _ commands.WorkspaceRepository = (*eventstore.Workspaces)(nil)

// countingStore counts stream reads.
type countingStore struct {
	eventstore.Store
	reads atomic.Int64
}

func (s *countingStore) ReadStream(ctx context.Context, stream string, o eventstore.ReadOptions) ([]eventstore.RecordedEvent, error) {
	s.reads.Add(1)
	return s.Store.ReadStream(ctx, stream, o)
}
