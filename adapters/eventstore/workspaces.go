package eventstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// readPage is how many events one catch-up read asks for.
const readPage = 1000

// Workspaces keeps workspace aggregates in a store, with an in-memory cache
// keyed by stream revision: a command first reads only the events appended
// since the cached revision (usually none), so it costs the same in a
// workspace of ten members as in one of a hundred thousand. Replicas share
// nothing: a cache that is behind catches up from the store, and a stale
// decision loses at the append's expected-revision check.
type Workspaces struct {
	store    Store
	codec    *Codec
	capacity int

	mu      sync.Mutex
	entries map[uuid.UUID]*list.Element // workspaces known to exist
	lru     *list.List                  // of *cached, most recently used first
	// loading holds entries of ids not yet known to exist, while requests
	// use them; they never count against capacity.
	loading map[uuid.UUID]*cached
}

type cached struct {
	id       uuid.UUID
	mu       sync.Mutex // serialises commands on one workspace in this process
	w        *domain.Workspace
	revision int64 // of the last event applied; -1 before the first
	last     domain.Position

	// Guarded by Workspaces.mu.
	el   *list.Element // its place in lru; nil until it is known to exist
	refs int           // requests using it
}

// ServeWorkspaceCache is how many workspace aggregates usersd serve keeps
// in one process (and the benchmarks that measure it as it runs).
const ServeWorkspaceCache = 1024

// NewWorkspaces returns a repository caching up to capacity workspaces.
func NewWorkspaces(store Store, codec *Codec, capacity int) *Workspaces {
	if store == nil || codec == nil {
		panic("eventstore: nil store or codec")
	}
	if capacity < 1 {
		capacity = 1
	}
	return &Workspaces{store: store, codec: codec, capacity: capacity, entries: make(map[uuid.UUID]*list.Element), lru: list.New()}
}

var _ commands.WorkspaceRepository = (*Workspaces)(nil)

// acquire returns the entry of id for one request, which must release it.
// A cached workspace becomes the most recently used. An id not cached gets
// an entry that requests for the same id share (so they stay serialised)
// but that joins the cache only when release learns that the workspace
// exists: requests for ids that exist nowhere (random ids in forged
// invitation tokens, say) never evict a workspace.
func (r *Workspaces) acquire(id uuid.UUID) *cached {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.loading[id]
	if el, cachedOK := r.entries[id]; cachedOK {
		r.lru.MoveToFront(el)
		c, ok = el.Value.(*cached), true
	}
	if !ok {
		c = &cached{id: id, w: domain.NewWorkspace(id), revision: -1}
		if r.loading == nil {
			r.loading = make(map[uuid.UUID]*cached)
		}
		r.loading[id] = c
	}
	c.refs++
	return c
}

// release ends a request's use of c, which it holds locked. A workspace that
// exists joins the cache, evicting the least recently used beyond
// capacity; one that does not is forgotten once no request uses it.
func (r *Workspaces) release(c *cached) {
	exists := c.w.Exists()
	r.mu.Lock()
	defer r.mu.Unlock()
	c.refs--
	if r.loading[c.id] != c {
		return // cached already, or evicted meanwhile
	}
	if exists {
		delete(r.loading, c.id)
		c.el = r.lru.PushFront(c)
		r.entries[c.id] = c.el
		for r.lru.Len() > r.capacity {
			old := r.lru.Back().Value.(*cached)
			r.lru.Remove(old.el)
			old.el = nil
			delete(r.entries, old.id)
		}
		return
	}
	if c.refs == 0 {
		delete(r.loading, c.id)
	}
}

// catchUp applies the events appended after the cached revision.
func (r *Workspaces) catchUp(ctx context.Context, c *cached) error {
	stream := WorkspaceStream(c.id)
	for {
		events, err := r.store.ReadStream(ctx, stream, ReadOptions{From: uint64(c.revision + 1), Max: readPage})
		if errors.Is(err, ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		recs, err := r.codec.Decode(ctx, events...)
		if err != nil {
			return err
		}
		for i, rec := range recs {
			c.w.Replay(rec.Event)
			c.revision, c.last = int64(events[i].Revision), events[i].Position
		}
		if len(events) < readPage {
			return nil
		}
	}
}

// Update loads, decides and appends; see commands.WorkspaceRepository.
func (r *Workspaces) Update(ctx context.Context, id uuid.UUID, decide func(w *domain.Workspace) error, stamp commands.Stamp) (domain.Position, error) {
	c := r.acquire(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer r.release(c)
	if c.revision >= 0 {
		// Decide on the cache first and let the append's expected revision
		// tell whether it was current: with one replica it always is, and
		// this saves every command the catch-up read. Only a decision that
		// appends is checked that way, so a refusal or a no-op is decided
		// again below on what the store holds, as is a lost append: decide
		// is pure, so running it twice costs only the time.
		err := decide(c.w)
		if err == nil && len(c.w.Pending()) > 0 {
			pos, err := r.appendPending(ctx, c, stamp)
			if !errors.Is(err, ErrWrongExpectedRevision) {
				return pos, err
			}
		}
		c.w.Discard()
	}
	if err := r.catchUp(ctx, c); err != nil {
		return domain.Position{}, err
	}
	if err := decide(c.w); err != nil {
		c.w.Discard()
		return domain.Position{}, err
	}
	return r.appendPending(ctx, c, stamp)
}

// Create appends a new workspace; its stream must not exist.
func (r *Workspaces) Create(ctx context.Context, w *domain.Workspace, stamp commands.Stamp) (domain.Position, error) {
	c := r.acquire(w.ID())
	c.mu.Lock()
	defer c.mu.Unlock()
	defer r.release(c)
	exists := &domain.Error{Code: domain.CodeWorkspaceExists, Message: "a workspace with this id already exists"}
	if c.revision >= 0 {
		return domain.Position{}, exists // cached, so stored
	}
	c.w = w
	pos, err := r.appendPending(ctx, c, stamp)
	if err != nil {
		// Another replica's, or nobody's: start from the store again.
		c.w, c.revision = domain.NewWorkspace(w.ID()), -1
		if errors.Is(err, domain.ErrConcurrency) {
			return domain.Position{}, exists
		}
	}
	return pos, err
}

func (r *Workspaces) appendPending(ctx context.Context, c *cached, stamp commands.Stamp) (domain.Position, error) {
	pending := c.w.Pending()
	if len(pending) == 0 {
		return c.last, nil
	}
	envs := make([]domain.Envelope, len(pending))
	for i, e := range pending {
		envs[i] = domain.Envelope{Event: e, Metadata: stamp(c.w, e)}
	}
	data, err := r.codec.Encode(ctx, envs...)
	if err != nil {
		c.w.Discard()
		return domain.Position{}, err
	}
	var expected ExpectedRevision = NoStream{}
	if c.revision >= 0 {
		expected = Revision(c.revision)
	}
	res, err := r.store.Append(ctx, WorkspaceStream(c.id), expected, data...)
	if err != nil {
		c.w.Discard()
		return domain.Position{}, err
	}
	c.w.Commit()
	c.revision, c.last = int64(res.NextExpectedRevision), res.Position
	return res.Position, nil
}

// View loads a workspace and lets read look at it.
func (r *Workspaces) View(ctx context.Context, id uuid.UUID, read func(w *domain.Workspace) error) error {
	c := r.acquire(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer r.release(c)
	if err := r.catchUp(ctx, c); err != nil {
		return err
	}
	if !c.w.Exists() {
		return domain.ErrWorkspaceNotFound
	}
	err := read(c.w)
	c.w.Discard()
	return err
}
