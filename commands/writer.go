package commands

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pause"
)

// writer appends decisions to workspaces: the repository and the sources of
// the events' metadata (the time and event ids). Every handler that changes
// a workspace holds one.
type writer struct {
	repo  WorkspaceRepository
	clock Clock
	ids   IDs
}

func newWriter(repo WorkspaceRepository, clock Clock, ids IDs) writer {
	if repo == nil || clock == nil || ids == nil {
		panic("commands: a handler needs a workspace repository, a clock and ids")
	}
	return writer{repo: repo, clock: clock, ids: ids}
}

// stamp returns the Stamp of a command's events: the actor (their e-mail
// filled in from the workspace), the request's trail, the time and an id.
func (w writer) stamp(m Meta) Stamp {
	now := w.clock.Now()
	return func(ws *domain.Workspace, _ domain.Event) domain.Metadata {
		actor := m.Actor
		if ws != nil && !actor.System && actor.Email == "" {
			if mem, ok := ws.Member(actor.UserID); ok {
				actor.Email = string(mem.Email)
			}
		}
		return domain.Metadata{
			EventID: w.ids.NewID(), SchemaVersion: domain.SchemaVersion, OccurredAt: now,
			Actor: actor, CorrelationID: m.CorrelationID, CausationID: m.CausationID, Request: m.Request,
		}
	}
}

// plainStamp is stamp for events outside a workspace (account streams).
func (w writer) plainStamp(m Meta) func(domain.Event) domain.Metadata {
	s := w.stamp(m)
	return func(e domain.Event) domain.Metadata { return s(nil, e) }
}

// maxAttempts bounds how often a command is decided again after another
// writer changed the workspace first.
const maxAttempts = 8

// update runs the pure decide against the current workspace and appends
// what it recorded, stamped by stamp (a new one per attempt), deciding
// again on conflicts.
func (w writer) update(ctx context.Context, id uuid.UUID, stamp func() Stamp, decide func(ws *domain.Workspace) error) (domain.Position, error) {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var pos domain.Position
		pos, err = w.repo.Update(ctx, id, decide, stamp())
		if !errors.Is(err, domain.ErrConcurrency) {
			return pos, err
		}
		if err := conflictPause(ctx, attempt); err != nil {
			return domain.Position{}, err
		}
	}
	return domain.Position{}, fmt.Errorf("workspace %s: gave up after %d conflicting attempts: %w", id, maxAttempts, err)
}

// updateAs is update with the command's own metadata.
func (w writer) updateAs(ctx context.Context, id uuid.UUID, m Meta, decide func(ws *domain.Workspace) error) (domain.Position, error) {
	return w.update(ctx, id, func() Stamp { return w.stamp(m) }, decide)
}

// conflictPause waits a random while after the attempt-th conflict (up to 1,
// 2, 4 … 64 ms): replicas that keep colliding on one workspace spread out
// instead of one of them losing every race until it gives up.
func conflictPause(ctx context.Context, attempt int) error {
	return pause.For(ctx, time.Duration(rand.Int64N(int64(time.Millisecond)<<min(attempt, 6))))
}

// system is the metadata of the system's own commands (the mailer, the
// expiry scheduler): the system acts, with the command's trail.
func system(m Meta) Meta {
	m.Actor = domain.Actor{System: true}
	return m
}
