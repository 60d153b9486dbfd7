package keystore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/pii"
)

// Concurrent commands making keys for new people (16 HTTP clients
// inviting, say) each committed a transaction of their own: one per
// invitation, a third of all the service's transactions
// (docs/per-invitation.md). The keys asked for while one round trip is in
// flight now go together in the next one: a lone caller goes at once, as
// before, and nobody waits for more than the round trip already under
// way. Each caller's statement still starts after its call, so what it
// answers (a key, or the erasure of one) is as fresh as it was alone.
//
// Not the event store's grouper (adapters/eventstore/postgres/group.go),
// though both coalesce: making a key is idempotent, so any caller here may
// leave on its context at once, even with its statement in flight (the
// keys are made all the same), and so the statements after the first run
// on a goroutine of their own, not a caller's; an append's outcome must
// reach its caller, so there a caller taken into a group waits for it and
// the group runs on its first member's goroutine. A panic here fails every
// queued call; there the members write alone and the queue moves on.

// ensureBatchMax bounds the subjects of one coalesced statement; a call
// asking for more goes alone.
const ensureBatchMax = 2000

// ensureTimeout bounds a coalesced round trip, which no single caller's
// context may end: the others wait on it too.
const ensureTimeout = 30 * time.Second

type ensureCall struct {
	ids  []uuid.UUID
	done chan ensureResult // buffered: a caller gone leaves it unread
}

type ensureResult struct {
	keys map[uuid.UUID]*pii.Key
	err  error
}

// ensureShared is ensure for one caller, in the same statement as the
// callers who came while another statement was in flight.
func (k *Keyring) ensureShared(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*pii.Key, error) {
	call := &ensureCall{ids: ids, done: make(chan ensureResult, 1)}
	k.ensureMu.Lock()
	if k.ensuring {
		k.ensureQueue = append(k.ensureQueue, call)
		k.ensureMu.Unlock()
		select {
		case r := <-call.done:
			return r.keys, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	k.ensuring = true
	k.ensureMu.Unlock()
	// The first caller runs its statement itself, alone and on its own
	// context: no hand-over for a lone writer. Those who queued meanwhile
	// go next, together, on a goroutine, so that this caller returns at
	// once.
	k.ensureBatch(ctx, []*ensureCall{call})
	if next := k.nextEnsureBatch(); next != nil {
		go func() {
			for batch := next; batch != nil; batch = k.nextEnsureBatch() {
				bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ensureTimeout)
				k.ensureBatch(bctx, batch)
				cancel()
			}
		}()
	}
	r := <-call.done
	return r.keys, r.err
}

// nextEnsureBatch takes the queued calls, up to ensureBatchMax subjects
// (at least one call), or, with none queued, ends the run.
func (k *Keyring) nextEnsureBatch() []*ensureCall {
	k.ensureMu.Lock()
	defer k.ensureMu.Unlock()
	if len(k.ensureQueue) == 0 {
		k.ensuring = false
		return nil
	}
	n, size := 0, 0
	for n < len(k.ensureQueue) && (n == 0 || size+len(k.ensureQueue[n].ids) <= ensureBatchMax) {
		size += len(k.ensureQueue[n].ids)
		n++
	}
	batch := slices.Clone(k.ensureQueue[:n])
	k.ensureQueue = slices.Delete(k.ensureQueue, 0, n)
	return batch
}

// ensureBatch runs one statement for the calls' subjects and answers each
// call its own keys, or the erasure of its own subjects.
func (k *Keyring) ensureBatch(ctx context.Context, calls []*ensureCall) {
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, c := range calls {
		for _, id := range c.ids {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	answered := false
	defer func() {
		if !answered { // ensure panicked: nobody may wait for an answer that never comes
			k.failEnsures(calls)
		}
	}()
	keys, erased, err := k.ensure(ctx, ids)
	answered = true
	for _, c := range calls {
		if err != nil {
			c.done <- ensureResult{err: err}
			continue
		}
		var mine []uuid.UUID
		for _, id := range c.ids {
			if slices.Contains(erased, id) {
				mine = append(mine, id)
			}
		}
		if len(mine) > 0 {
			c.done <- ensureResult{err: &pii.ErasedError{Subjects: mine}}
			continue
		}
		out := make(map[uuid.UUID]*pii.Key, len(c.ids))
		for _, id := range c.ids {
			out[id] = keys[id]
		}
		c.done <- ensureResult{keys: out}
	}
}

// failEnsures answers calls, and every queued call, with errEnsureFailed
// and ends the run, so that a panic in a statement (which goes on up)
// leaves no caller waiting and lets the next caller lead.
func (k *Keyring) failEnsures(calls []*ensureCall) {
	k.ensureMu.Lock()
	queued := k.ensureQueue
	k.ensureQueue, k.ensuring = nil, false
	k.ensureMu.Unlock()
	for _, c := range append(calls, queued...) {
		select {
		case c.done <- ensureResult{err: errEnsureFailed}:
		default: // answered before the panic
		}
	}
}

var errEnsureFailed = errors.New("key store: a shared statement making keys failed unexpectedly")
