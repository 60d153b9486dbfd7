package postgres

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Group commit. A durable commit costs a WAL flush and a transaction's
// bookkeeping on the server whatever it holds, so writes that arrive while
// another commit is in flight wait for it and then go together, as one
// statement (one implicit transaction, one flush). There is no timer: a
// lone writer finds nothing in flight and runs its own statement at once,
// exactly as without grouping; only writes that would have queued on the
// server anyway (for its CPU, its WAL lock) queue here instead.
//
// Up to maxInFlight writes or groups are in flight at a time, each on its
// own connection: one alone would leave the server's other cores idle
// while it runs. A write that finds fewer in flight runs at once, alone.
// When one ends, its leader hands the queue's head over to the first
// waiter, which runs it as the next group on its own goroutine: each caller
// returns as soon as its own group is done.

// groupTimeout bounds a group's statement. A lone append honours its
// caller's ctx; a group's members wait whatever their ctx, so a group
// needs a bound: far above any statement a healthy database takes.
const groupTimeout = 30 * time.Second

// errAlone tells the members of a group whose statement failed as a whole
// to write alone, each its own way as without grouping: a failure of one
// member (a reused event id, a data exception, a deadlock with another
// process) must not be the others' answer.
var errAlone = errors.New("group failed; write alone")

// member is one write waiting for, or in, a group.
type member[T, R any] struct {
	item  T
	res   R
	err   error
	taken bool                 // in a group: its outcome will stand
	lead  chan []*member[T, R] // receives the group this member runs
	done  chan struct{}        // closed once res and err are set
}

// grouper coalesces writes of one kind.
type grouper[T, R any] struct {
	maxInFlight int
	maxItems    int            // writes in one group
	maxRows     int            // rows in one group; a larger write goes alone
	rows        func(T) int    // rows a write inserts
	key         func(T) string // writes sharing a key never share a group ("": any)
	// one runs a lone write, with the caller's ctx, as without grouping.
	one func(ctx context.Context, item T) (R, error)
	// many runs a group of two or more, answering each member in order.
	many func(ctx context.Context, items []T) ([]R, []error)

	mu       sync.Mutex
	inFlight int // writes and groups running; the queue waits only at max
	queue    []*member[T, R]
}

// do runs item alone if nothing is in flight, else in the next group.
func (g *grouper[T, R]) do(ctx context.Context, item T) (R, error) {
	g.mu.Lock()
	if g.inFlight < g.maxInFlight {
		g.inFlight++
		g.mu.Unlock()
		defer g.handOff() // even if one panics: the queue must move on
		return g.one(ctx, item)
	}
	m := &member[T, R]{item: item, lead: make(chan []*member[T, R], 1), done: make(chan struct{})}
	g.queue = append(g.queue, m)
	g.mu.Unlock()
	if res, ok, err := g.wait(ctx, m, ctx.Done()); ok {
		return res, err
	}
	g.mu.Lock()
	if !m.taken {
		for i, q := range g.queue {
			if q == m {
				g.queue = append(g.queue[:i], g.queue[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		var zero R
		return zero, ctx.Err()
	}
	g.mu.Unlock()
	// Taken meanwhile: its group runs whatever this caller does now.
	res, _, err := g.wait(ctx, m, nil)
	return res, err
}

// wait answers m's outcome, running its group if m leads it, unless stop
// ends first (ok false).
func (g *grouper[T, R]) wait(ctx context.Context, m *member[T, R], stop <-chan struct{}) (res R, ok bool, err error) {
	select {
	case group := <-m.lead:
		res, err = g.run(ctx, m, group)
		return res, true, err
	case <-m.done:
		return m.res, true, m.err
	case <-stop:
		return res, false, nil
	}
}

// run runs the group m leads, answers its members and hands over.
func (g *grouper[T, R]) run(ctx context.Context, m *member[T, R], group []*member[T, R]) (R, error) {
	// The group's outcome stands once taken: no member's end cuts it short.
	// Its members cannot leave, so its statement has a deadline of its own:
	// one stuck behind a lock or a full pool fails them all rather than
	// holding them forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	defer cancel()
	finished := false
	defer func() {
		for _, q := range group {
			if q != m {
				if !finished { // the leader panics: each writes alone
					var zero R
					q.res, q.err = zero, errAlone
				}
				close(q.done)
			}
		}
		g.handOff()
	}()
	if len(group) == 1 {
		m.res, m.err = g.one(ctx, m.item)
	} else {
		items := make([]T, len(group))
		for i, q := range group {
			items[i] = q.item
		}
		res, errs := g.many(ctx, items)
		for i, q := range group {
			q.res, q.err = res[i], errs[i]
		}
	}
	finished = true
	return m.res, m.err
}

// handOff ends the write in flight: the next group, if any, goes to its
// first member to run.
func (g *grouper[T, R]) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.inFlight--
		return
	}
	var group []*member[T, R]
	keys := make(map[string]bool)
	rows := 0
	rest := g.queue[:0]
	for _, q := range g.queue {
		k, n := g.key(q.item), g.rows(q.item)
		fits := len(group) == 0 || (len(group) < g.maxItems && rows+n <= g.maxRows && (k == "" || !keys[k]))
		if !fits {
			rest = append(rest, q)
			continue
		}
		q.taken = true
		group = append(group, q)
		rows += n
		if k != "" {
			keys[k] = true
		}
	}
	clear(g.queue[len(rest):])
	g.queue = rest
	group[0].lead <- group
}
