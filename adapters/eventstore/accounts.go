package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// resolveParallel bounds the reservations one batch runs at once.
const resolveParallel = 8

// Accounts reserves one user id per e-mail address by appending
// AccountRegistered to the address's own stream with "no stream" expected:
// of two workspaces inviting the same new person at once, one append wins
// and the other reads the winner's id. A reservation never changes, so ids
// once seen are remembered.
type Accounts struct {
	store Store
	mu    sync.RWMutex
	known map[domain.Email]uuid.UUID
	limit int
}

// NewAccounts returns the registry, remembering up to limit addresses.
func NewAccounts(store Store, limit int) *Accounts {
	if store == nil {
		panic("eventstore: nil store")
	}
	return &Accounts{store: store, known: make(map[domain.Email]uuid.UUID), limit: limit}
}

var _ commands.Accounts = (*Accounts)(nil)

// Resolve answers the user id of each address, registering the new ones.
func (a *Accounts) Resolve(ctx context.Context, emails []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error) {
	out := make(map[domain.Email]uuid.UUID, len(emails))
	var todo []domain.Email
	queued := make(map[domain.Email]bool, len(emails))
	a.mu.RLock()
	for _, e := range emails {
		if id, ok := a.known[e]; ok {
			out[e] = id
		} else if !queued[e] { // an address twice is reserved once
			queued[e] = true
			todo = append(todo, e)
		}
	}
	a.mu.RUnlock()
	if len(todo) == 0 {
		return out, nil
	}
	todo, earlier, err := a.earlierSpellings(ctx, todo)
	if err != nil {
		return nil, err
	}
	if len(earlier) > 0 {
		a.mu.Lock()
		for e, id := range earlier {
			out[e] = id
			if len(a.known) < a.limit {
				a.known[e] = id
			}
		}
		a.mu.Unlock()
	}
	if len(todo) == 0 {
		return out, nil
	}
	// Ids and metadata come from the caller's sources, which need not be
	// safe for concurrent use: draw them before going parallel.
	type job struct {
		email domain.Email
		event registration
	}
	jobs := make([]job, len(todo))
	for i, e := range todo {
		ev := domain.AccountRegistered{UserID: newID(), Email: string(e)}
		jobs[i] = job{e, registration{ev, meta(ev)}}
	}
	ids := make([]uuid.UUID, len(todo))
	// With a store that starts many streams at once, one round trip
	// reserves every new address of the batch; only the addresses someone
	// else reserved first are then read, one by one.
	reserved := make([]bool, len(todo))
	taken := make([]bool, len(todo)) // someone else's start came first
	if starter, ok := a.store.(StreamStarter); ok {
		starts := make([]StreamStart, len(jobs))
		for i, j := range jobs {
			data, err := Encode(j.event.Event, j.event.Meta)
			if err != nil {
				return nil, err
			}
			starts[i] = StreamStart{Stream: AccountStream(j.email), Event: data}
		}
		started, err := starter.StartStreams(ctx, starts)
		if err != nil {
			return nil, fmt.Errorf("reserve %d accounts: %w", len(starts), err)
		}
		for i, ok := range started {
			if ok {
				ids[i], reserved[i] = jobs[i].event.Event.UserID, true
			} else {
				taken[i] = true
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveParallel)
	for i := range jobs {
		if reserved[i] {
			continue
		}
		g.Go(func() error {
			if taken[i] {
				// The stream exists: read its id rather than append
				// again only to be refused.
				id, err := a.lookup(gctx, AccountStream(jobs[i].email))
				if !errors.Is(err, ErrStreamNotFound) {
					ids[i] = id
					return err
				}
			}
			id, err := a.reserve(gctx, jobs[i].email, jobs[i].event)
			ids[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, e := range todo {
		out[e] = ids[i]
		if len(a.known) < a.limit {
			a.known[e] = ids[i]
		}
	}
	return out, nil
}

// earlierSpellings finds the accounts reserved under the spelling an
// address had before addresses were normalised with IDNA: its domain's
// ASCII form ("jane@xn--mnchen-3ya.de" for "jane@münchen.de") was kept as
// typed, and so named its own stream. Such an account is the person's: it
// keeps its id. New reservations use the canonical form only, so an
// earlier spelling's stream never appears after the fact. It answers the
// addresses still to reserve and the ids found.
func (a *Accounts) earlierSpellings(ctx context.Context, emails []domain.Email) ([]domain.Email, map[domain.Email]uuid.UUID, error) {
	var rest []domain.Email
	var found map[domain.Email]uuid.UUID
	for _, e := range emails {
		if alt, _ := e.ASCII(); alt != string(e) {
			id, err := a.lookup(ctx, AccountStream(domain.Email(alt)))
			if err == nil {
				if found == nil {
					found = make(map[domain.Email]uuid.UUID)
				}
				found[e] = id
				continue
			}
			if !errors.Is(err, ErrStreamNotFound) {
				return nil, nil, err
			}
		}
		rest = append(rest, e)
	}
	return rest, found, nil
}

// registration pairs the event with its metadata.
type registration struct {
	Event domain.AccountRegistered
	Meta  domain.Metadata
}

func (a *Accounts) reserve(ctx context.Context, email domain.Email, reg registration) (uuid.UUID, error) {
	stream := AccountStream(email)
	data, err := Encode(reg.Event, reg.Meta)
	if err != nil {
		return uuid.Nil, err
	}
	// Append first, read only if that fails: an address this process has
	// not seen is most often new (an invitation batch is mostly new
	// people), so a read first would cost every new address a second round
	// trip, which was most of a batch invitation's time.
	for attempt := 0; attempt < 3; attempt++ {
		_, err = a.store.Append(ctx, stream, NoStream{}, data)
		if err == nil {
			return reg.Event.UserID, nil
		}
		if !errors.Is(err, ErrWrongExpectedRevision) {
			return uuid.Nil, err
		}
		// Someone reserved the address first: read their id.
		if id, err := a.lookup(ctx, stream); err == nil {
			return id, nil
		} else if !errors.Is(err, ErrStreamNotFound) {
			return uuid.Nil, err
		}
	}
	return uuid.Nil, fmt.Errorf("reserve %s: %w", stream, domain.ErrConcurrency)
}

func (a *Accounts) lookup(ctx context.Context, stream string) (uuid.UUID, error) {
	events, err := a.store.ReadStream(ctx, stream, ReadOptions{Max: 1})
	if err != nil {
		return uuid.Nil, err
	}
	rec, err := Decode(events[0])
	if err != nil {
		return uuid.Nil, err
	}
	reg, ok := rec.Event.(domain.AccountRegistered)
	if !ok {
		return uuid.Nil, fmt.Errorf("%s starts with %s, want %s", stream, events[0].Type, domain.EventName(reg))
	}
	return reg.UserID, nil
}

// Logins appends logins to each workspace's logins stream.
type Logins struct{ store Store }

// NewLogins returns the login recorder.
func NewLogins(store Store) *Logins {
	if store == nil {
		panic("eventstore: nil store")
	}
	return &Logins{store: store}
}

var _ commands.Logins = (*Logins)(nil)

// Record appends one login; logins never conflict, so any revision goes.
func (l *Logins) Record(ctx context.Context, e domain.UserLoggedIn, meta domain.Metadata) (domain.Position, error) {
	data, err := Encode(e, meta)
	if err != nil {
		return domain.Position{}, err
	}
	res, err := l.store.Append(ctx, LoginsStream(e.WorkspaceID), Any{}, data)
	if err != nil {
		return domain.Position{}, err
	}
	return res.Position, nil
}
