package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// resolveParallel bounds the reads and reservations one batch runs at once.
const resolveParallel = 8

// Accounts reserves one user id per e-mail address by appending
// AccountRegistered to the address's own stream (named by
// Codec.AccountStream) with "no stream" expected: of two workspaces inviting
// the same new person at once, one append wins and the other reads the
// winner's id. The stream's last AccountRegistered is the address's current
// account: once that account is deleted and its key destroyed, the next
// invitation appends a new AccountRegistered with a new id, so a person
// who comes back is a new person. Ids once seen are remembered, and checked
// against the keyring on every use.
type Accounts struct {
	store Store
	codec *Codec
	mu    sync.RWMutex
	known map[domain.Email]uuid.UUID
	limit int
}

// ServeAccountCache is how many addresses usersd serve's registry
// remembers (and the benchmarks' that measure it as it runs).
const ServeAccountCache = 100_000

// NewAccounts returns the registry, remembering up to limit addresses.
func NewAccounts(store Store, codec *Codec, limit int) *Accounts {
	if store == nil || codec == nil {
		panic("eventstore: nil store or codec")
	}
	return &Accounts{store: store, codec: codec, known: make(map[domain.Email]uuid.UUID), limit: limit}
}

var _ commands.Accounts = (*Accounts)(nil)

// Resolve answers the user id of each address, registering the new ones and
// those whose account was erased.
func (a *Accounts) Resolve(ctx context.Context, emails []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error) {
	found := make(map[domain.Email]uuid.UUID, len(emails))
	var todo []domain.Email
	queued := make(map[domain.Email]bool, len(emails))
	a.mu.RLock()
	for _, e := range emails {
		if id, ok := a.known[e]; ok {
			found[e] = id
		} else if !queued[e] { // an address twice is reserved once
			queued[e] = true
			todo = append(todo, e)
		}
	}
	a.mu.RUnlock()
	todo, legacy, err := a.legacyAccounts(ctx, todo)
	if err != nil {
		return nil, err
	}
	for e, id := range legacy {
		found[e] = id
	}
	// One round trip checks every id found: an erased one (known, or
	// read from a legacy stream) is forgotten and its address registered
	// anew.
	ids := make([]uuid.UUID, 0, len(found))
	for _, id := range found {
		ids = append(ids, id)
	}
	erased, err := a.erased(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[domain.Email]uuid.UUID, len(emails))
	for e, id := range found {
		if erased[id] {
			todo = append(todo, e)
		} else {
			out[e] = id
		}
	}
	if len(erased) > 0 {
		a.mu.Lock()
		for e, id := range a.known {
			if erased[id] {
				delete(a.known, e)
			}
		}
		a.mu.Unlock()
	}
	if len(todo) > 0 {
		ids, err := a.register(ctx, todo, newID, meta)
		if err != nil {
			return nil, err
		}
		for i, e := range todo {
			out[e] = ids[i]
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for e, id := range out {
		if _, ok := a.known[e]; !ok && len(a.known) < a.limit {
			a.known[e] = id
		}
	}
	return out, nil
}

// erased answers which of the ids' keys are destroyed, asking the key
// store itself (EnsureFresh): an address erased a moment ago on another
// replica must get a new account. It makes the missing keys: every id it
// is asked about is about to be sealed for.
func (a *Accounts) erased(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	_, err := a.codec.keys.EnsureFresh(ctx, ids)
	var gone *pii.ErasedError
	if errors.As(err, &gone) {
		out := make(map[uuid.UUID]bool, len(gone.Subjects))
		for _, s := range gone.Subjects {
			out[s] = true
		}
		return out, nil
	}
	return nil, err
}

// legacyAccounts finds the accounts reserved before stream names were keyed,
// under the address's plain hash (LegacyAccountStream), or under the
// spelling an address had before addresses were normalised with IDNA: its
// domain's ASCII form ("jane@xn--mnchen-3ya.de" for "jane@münchen.de") was
// kept as typed, and so named its own stream. Such an account is the
// person's: it keeps its id. New reservations use the keyed name of the
// canonical form only, so a legacy stream never appears after the fact,
// and one whose account was erased is superseded by the keyed stream. It
// answers the addresses still to resolve and the ids found.
func (a *Accounts) legacyAccounts(ctx context.Context, emails []domain.Email) ([]domain.Email, map[domain.Email]uuid.UUID, error) {
	if len(emails) == 0 {
		return nil, nil, nil
	}
	names := make([][]string, len(emails))
	for i, e := range emails {
		names[i] = []string{LegacyAccountStream(e)}
		if alt, _ := e.ASCII(); alt != string(e) {
			names[i] = append(names[i], LegacyAccountStream(domain.Email(alt)))
		}
	}
	ids := make([]uuid.UUID, len(emails))
	if reader, ok := a.store.(LastEventsReader); ok {
		var all []string
		for _, n := range names {
			all = append(all, n...)
		}
		last, err := reader.LastEvents(ctx, all)
		if err != nil {
			return nil, nil, err
		}
		for i, n := range names {
			for _, stream := range n {
				if ev, ok := last[stream]; ok {
					if ids[i], _, err = registeredID(ev); err != nil {
						return nil, nil, err
					}
					break
				}
			}
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(resolveParallel)
		for i := range emails {
			g.Go(func() error {
				for _, stream := range names[i] {
					id, _, err := a.current(gctx, stream)
					if err == nil {
						ids[i] = id
						return nil
					}
					if !errors.Is(err, ErrStreamNotFound) {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
	}
	var rest []domain.Email
	found := make(map[domain.Email]uuid.UUID)
	for i, e := range emails {
		if ids[i] == uuid.Nil {
			rest = append(rest, e)
		} else {
			found[e] = ids[i]
		}
	}
	return rest, found, nil
}

// register reserves each address on its keyed stream, or reads who did
// first, and answers their ids in order.
func (a *Accounts) register(ctx context.Context, todo []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) ([]uuid.UUID, error) {
	// Ids and metadata come from the caller's sources, which need not be
	// safe for concurrent use: draw them before going parallel.
	envs := make([]domain.Envelope, len(todo))
	for i, e := range todo {
		ev := domain.AccountRegistered{UserID: newID(), Email: string(e)}
		envs[i] = domain.Envelope{Event: ev, Metadata: meta(ev)}
	}
	data, err := a.codec.Encode(ctx, envs...)
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(todo))
	// With a store that starts many streams at once, one round trip
	// reserves every new address of the batch; only the addresses someone
	// else reserved first are then read, one by one.
	reserved := make([]bool, len(todo))
	taken := make([]bool, len(todo)) // someone else's start came first
	if starter, ok := a.store.(StreamStarter); ok {
		starts := make([]StreamStart, len(todo))
		for i, e := range todo {
			starts[i] = StreamStart{Stream: a.codec.AccountStream(e), Event: data[i]}
		}
		started, err := starter.StartStreams(ctx, starts)
		if err != nil {
			return nil, fmt.Errorf("reserve %d accounts: %w", len(starts), err)
		}
		for i, ok := range started {
			if ok {
				ids[i], reserved[i] = envs[i].Event.(domain.AccountRegistered).UserID, true
			} else {
				taken[i] = true
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveParallel)
	for i := range todo {
		if reserved[i] {
			continue
		}
		g.Go(func() error {
			id, err := a.reserve(gctx, a.codec.AccountStream(todo[i]), envs[i].Event.(domain.AccountRegistered).UserID, data[i], taken[i])
			ids[i] = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return ids, nil
}

// reserve appends data (registering id) to stream unless the stream's
// current account is alive, and answers the current account's id. With
// taken, the stream is known to exist: it reads first rather than append
// only to be refused.
func (a *Accounts) reserve(ctx context.Context, stream string, id uuid.UUID, data EventData, taken bool) (uuid.UUID, error) {
	// Append first, read only if that fails: an address this process has
	// not seen is most often new (an invitation batch is mostly new
	// people), so a read first would cost every new address a second round
	// trip, which was most of a batch invitation's time.
	var expected ExpectedRevision = NoStream{}
	for attempt := 0; attempt < 4; attempt++ {
		if !taken || attempt > 0 {
			_, err := a.store.Append(ctx, stream, expected, data)
			if err == nil {
				return id, nil
			}
			if !errors.Is(err, ErrWrongExpectedRevision) {
				return uuid.Nil, err
			}
		}
		// Someone reserved the address first: read their id, and
		// supersede it only if that account was erased.
		current, rev, err := a.current(ctx, stream)
		if errors.Is(err, ErrStreamNotFound) {
			expected = NoStream{}
			continue
		}
		if err != nil {
			return uuid.Nil, err
		}
		gone, err := a.erased(ctx, []uuid.UUID{current})
		if err != nil {
			return uuid.Nil, err
		}
		if !gone[current] {
			return current, nil
		}
		expected = Revision(rev)
	}
	return uuid.Nil, fmt.Errorf("reserve %s: %w", stream, domain.ErrConcurrency)
}

// current answers the id an account stream names last, and its revision.
// It reads only the user id: the address is not needed, so no key is.
func (a *Accounts) current(ctx context.Context, stream string) (uuid.UUID, uint64, error) {
	events, err := a.store.ReadStream(ctx, stream, ReadOptions{Backwards: true, FromEnd: true, Max: 1})
	if err != nil {
		return uuid.Nil, 0, err
	}
	if len(events) == 0 { // a store that answers an existing stream with nothing
		return uuid.Nil, 0, fmt.Errorf("%s: no last event", stream)
	}
	return registeredID(events[0])
}

// registeredID reads the user id of an account stream's event.
func registeredID(last RecordedEvent) (uuid.UUID, uint64, error) {
	stream := last.StreamID
	var reg struct {
		UserID uuid.UUID `json:"userId"`
	}
	if want := domain.EventName(domain.AccountRegistered{}); last.Type != want {
		return uuid.Nil, 0, fmt.Errorf("%s ends with %s, want %s", stream, last.Type, want)
	}
	if err := json.Unmarshal(last.Data, &reg); err != nil || reg.UserID == uuid.Nil {
		return uuid.Nil, 0, fmt.Errorf("%s@%d: no user id in %s", stream, last.Revision, last.Type)
	}
	return reg.UserID, last.Revision, nil
}

// Delete records that userID's account is deleted: AccountDeleted, the
// first and only event of the stream PersonStream(userID). It is
// idempotent: a second call answers the first one's time and position.
// Destroying the person's key is the caller's next step (and erases the
// personal values of every event about them).
func (a *Accounts) Delete(ctx context.Context, userID uuid.UUID, meta domain.Metadata, at time.Time) (time.Time, domain.Position, error) {
	if userID == uuid.Nil {
		return time.Time{}, domain.Position{}, errors.New("delete account: no user id")
	}
	stream := PersonStream(userID)
	// Read first: a repeated deletion is as likely as a first one (a
	// client retrying), and its actor may be the erased person.
	if t, pos, err := a.deleted(ctx, stream); !errors.Is(err, ErrStreamNotFound) {
		return t, pos, err
	}
	if meta.EventID == uuid.Nil {
		meta.EventID = uuid.New()
	}
	if meta.OccurredAt.IsZero() {
		meta.OccurredAt = at
	}
	data, err := a.codec.EncodeOne(ctx, domain.AccountDeleted{UserID: userID, DeletedAt: at}, meta)
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	res, err := a.store.Append(ctx, stream, NoStream{}, data)
	if err == nil {
		return at, res.Position, nil
	}
	if !errors.Is(err, ErrWrongExpectedRevision) {
		return time.Time{}, domain.Position{}, err
	}
	return a.deleted(ctx, stream) // deleted meanwhile
}

func (a *Accounts) deleted(ctx context.Context, stream string) (time.Time, domain.Position, error) {
	events, err := a.store.ReadStream(ctx, stream, ReadOptions{Max: 1})
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	rec, err := decodeStored(events[0]) // AccountDeleted holds nothing personal
	if err != nil {
		return time.Time{}, domain.Position{}, err
	}
	d, ok := rec.Event.(domain.AccountDeleted)
	if !ok {
		return time.Time{}, domain.Position{}, fmt.Errorf("%s starts with %s, want %s", stream, events[0].Type, domain.EventName(d))
	}
	return d.DeletedAt, events[0].Position, nil
}

// Logins appends logins to each workspace's logins stream.
type Logins struct {
	store Store
	codec *Codec
}

// NewLogins returns the login recorder.
func NewLogins(store Store, codec *Codec) *Logins {
	if store == nil || codec == nil {
		panic("eventstore: nil store or codec")
	}
	return &Logins{store: store, codec: codec}
}

var _ commands.Logins = (*Logins)(nil)

// Record appends one login; logins never conflict, so any revision goes.
func (l *Logins) Record(ctx context.Context, e domain.UserLoggedIn, meta domain.Metadata) (domain.Position, error) {
	data, err := l.codec.EncodeOne(ctx, e, meta)
	if err != nil {
		return domain.Position{}, err
	}
	res, err := l.store.Append(ctx, LoginsStream(e.WorkspaceID), Any{}, data)
	if err != nil {
		return domain.Position{}, err
	}
	return res.Position, nil
}
