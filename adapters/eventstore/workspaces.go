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
	capacity int

	mu      sync.Mutex
	entries map[uuid.UUID]*list.Element
	lru     *list.List // of *cached, most recently used first
}

type cached struct {
	id       uuid.UUID
	mu       sync.Mutex // serialises commands on one workspace in this process
	w        *domain.Workspace
	revision int64 // of the last event applied; -1 before the first
	last     domain.Position
}

// NewWorkspaces returns a repository caching up to capacity workspaces.
func NewWorkspaces(store Store, capacity int) *Workspaces {
	if store == nil {
		panic("eventstore: nil store")
	}
	if capacity < 1 {
		capacity = 1
	}
	return &Workspaces{store: store, capacity: capacity, entries: make(map[uuid.UUID]*list.Element), lru: list.New()}
}

var _ commands.WorkspaceRepository = (*Workspaces)(nil)

// entry returns the cache entry of id, making it the most recently used and
// evicting the least recently used beyond capacity.
func (r *Workspaces) entry(id uuid.UUID) *cached {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[id]; ok {
		r.lru.MoveToFront(el)
		return el.Value.(*cached)
	}
	c := &cached{id: id, w: domain.NewWorkspace(id), revision: -1}
	r.entries[id] = r.lru.PushFront(c)
	for r.lru.Len() > r.capacity {
		old := r.lru.Back()
		r.lru.Remove(old)
		delete(r.entries, old.Value.(*cached).id)
	}
	return c
}

// forget drops a workspace that does not exist, so that requests for random
// ids cannot fill the cache.
func (r *Workspaces) forget(c *cached) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[c.id]; ok && el.Value == c {
		r.lru.Remove(el)
		delete(r.entries, c.id)
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
		for _, raw := range events {
			rec, err := Decode(raw)
			if err != nil {
				return err
			}
			c.w.Replay(rec.Event)
			c.revision, c.last = int64(raw.Revision), raw.Position
		}
		if len(events) < readPage {
			return nil
		}
	}
}

// Update loads, decides and appends; see commands.WorkspaceRepository.
func (r *Workspaces) Update(ctx context.Context, id uuid.UUID, decide func(w *domain.Workspace) error, stamp commands.Stamp) (domain.Position, error) {
	c := r.entry(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revision >= 0 {
		// Decide on the cache first and let the append's expected revision
		// tell whether it was current: with one replica it always is, and
		// this saves every command the catch-up read. Only a decision that
		// appends is checked that way, so a refusal or a no-op is decided
		// again below on what the store holds, as is a lost append.
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
	if !c.w.Exists() {
		defer r.forget(c)
	}
	if err := decide(c.w); err != nil {
		c.w.Discard()
		return domain.Position{}, err
	}
	return r.appendPending(ctx, c, stamp)
}

// Create appends a new workspace; its stream must not exist.
func (r *Workspaces) Create(ctx context.Context, w *domain.Workspace, stamp commands.Stamp) (domain.Position, error) {
	c := r.entry(w.ID())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w, c.revision = w, -1
	pos, err := r.appendPending(ctx, c, stamp)
	if err != nil {
		r.forget(c)
		if errors.Is(err, domain.ErrConcurrency) {
			return domain.Position{}, &domain.Error{Code: domain.CodeWorkspaceExists, Message: "a workspace with this id already exists"}
		}
	}
	return pos, err
}

func (r *Workspaces) appendPending(ctx context.Context, c *cached, stamp commands.Stamp) (domain.Position, error) {
	pending := c.w.Pending()
	if len(pending) == 0 {
		return c.last, nil
	}
	data := make([]EventData, len(pending))
	for i, e := range pending {
		d, err := Encode(e, stamp(c.w, e))
		if err != nil {
			c.w.Discard()
			return domain.Position{}, err
		}
		data[i] = d
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
	c := r.entry(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := r.catchUp(ctx, c); err != nil {
		return err
	}
	if !c.w.Exists() {
		r.forget(c)
		return domain.ErrWorkspaceNotFound
	}
	err := read(c.w)
	c.w.Discard()
	return err
}
