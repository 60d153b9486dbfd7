package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// DeleteAccount deletes a person's account and erases their personal data:
// they leave every workspace (a removal, or a revoked invitation, in each),
// the account's deletion is recorded, and their data key is destroyed,
// which erases every value sealed for them. It is the platform's (the
// system's), never a member's.
type DeleteAccount struct {
	UserID uuid.UUID
	Meta   Meta
}

// DeleteAccountResult is when the person's data was erased (the time of the
// first AccountDeleted, on every repeat) and that event's position.
type DeleteAccountResult struct {
	UserID   uuid.UUID
	ErasedAt time.Time
	Position domain.Position
}

// AccountDeleter records an account's deletion (AccountDeleted on the
// person's own stream). Idempotent: a second call answers the first one's
// time and position.
type AccountDeleter interface {
	Delete(ctx context.Context, userID uuid.UUID, meta domain.Metadata, at time.Time) (deletedAt time.Time, pos domain.Position, err error)
}

// KeyShredder destroys a person's data key. Idempotent: it answers the
// first destruction's time.
type KeyShredder interface {
	Destroy(ctx context.Context, userID uuid.UUID) (erasedAt time.Time, err error)
}

// PersonDirectory answers what the read models know of an account.
type PersonDirectory interface {
	Person(ctx context.Context, userID uuid.UUID) (Person, error)
}

// Person is an account as the read models know it.
type Person struct {
	// Registered: an AccountRegistered made this account (deleted or not).
	Registered bool
	Deleted    bool
	// Workspaces where the person is a member (active or suspended) or has
	// a pending invitation.
	Workspaces []uuid.UUID
}

// ErrAccountNotFound answers a deletion of an id no account has.
var ErrAccountNotFound = &domain.Error{Code: domain.CodeAccountNotFound, Message: "no account has this id"}

// LastAdminError refuses a deletion: the person is the last active Admin of
// these workspaces, and nothing was changed anywhere.
type LastAdminError struct {
	Workspaces []uuid.UUID
	err        error
}

func (e *LastAdminError) Error() string {
	return fmt.Sprintf("the person is the last active Admin of %d workspace(s); make someone else Admin there first", len(e.Workspaces))
}

// Unwrap makes the refusal match its domain code (last_admin).
func (e *LastAdminError) Unwrap() error { return e.err }

type DeleteAccountHandler struct {
	w        writer
	people   PersonDirectory
	accounts AccountDeleter
	keys     KeyShredder
}

func NewDeleteAccountHandler(repo WorkspaceRepository, people PersonDirectory, accounts AccountDeleter, keys KeyShredder, clock Clock, ids IDs) DeleteAccountHandler {
	if people == nil || accounts == nil || keys == nil {
		panic("commands: DeleteAccount needs a person directory, an account deleter and a key shredder")
	}
	return DeleteAccountHandler{w: newWriter(repo, clock, ids), people: people, accounts: accounts, keys: keys}
}

// Handle checks every workspace before changing any, then removes the
// person from each, records the deletion and destroys the key. Every step
// is idempotent, so a repeat (or a retry after a crash half-way) finishes
// what is left and answers the first deletion's time and position.
func (h DeleteAccountHandler) Handle(ctx context.Context, cmd DeleteAccount) (DeleteAccountResult, error) {
	p, err := h.people.Person(ctx, cmd.UserID)
	if err != nil {
		return DeleteAccountResult{}, err
	}
	if !p.Registered {
		return DeleteAccountResult{}, ErrAccountNotFound
	}
	var blocked []uuid.UUID
	var refusal error
	for _, ws := range p.Workspaces {
		err := h.w.repo.View(ctx, ws, func(w *domain.Workspace) error { return w.CheckRemovalForDeletion(cmd.UserID) })
		if domain.ErrorCode(err) == domain.CodeLastAdmin {
			blocked, refusal = append(blocked, ws), err
		} else if err != nil {
			return DeleteAccountResult{}, err
		}
	}
	if len(blocked) > 0 {
		return DeleteAccountResult{}, &LastAdminError{Workspaces: blocked, err: refusal}
	}
	if err := h.removeEverywhere(ctx, p.Workspaces, cmd); err != nil {
		return DeleteAccountResult{}, err
	}
	now := h.w.clock.Now()
	deletedAt, pos, err := h.accounts.Delete(ctx, cmd.UserID, h.w.plainStamp(cmd.Meta)(domain.AccountDeleted{UserID: cmd.UserID, DeletedAt: now}), now)
	if err != nil {
		return DeleteAccountResult{}, fmt.Errorf("record the deletion: %w", err)
	}
	// The answer's time is the recorded deletion's, not the key store's:
	// the event is what every replica and every repeat reads back alike.
	if _, err := h.keys.Destroy(ctx, cmd.UserID); err != nil {
		return DeleteAccountResult{}, fmt.Errorf("destroy the data key: %w", err)
	}
	return DeleteAccountResult{UserID: cmd.UserID, ErasedAt: deletedAt, Position: pos}, nil
}

// removalWorkers bounds the workspaces one deletion changes at once. Each
// removal is its own append (a transaction and its commit's flush), so a
// person in 100 workspaces removed one by one waits out 100 commits in a
// row; a few at a time overlap them, while taking no more than a few of the
// pool's connections from the requests served meanwhile.
const removalWorkers = 8

// removeEverywhere removes the person from every workspace, a few at once:
// each workspace is its own stream, so the order between them means
// nothing. The first failure stops the removals not yet started and is the
// answer; the ones done stay done, which a repeat of the deletion finishes.
func (h DeleteAccountHandler) removeEverywhere(ctx context.Context, workspaces []uuid.UUID, cmd DeleteAccount) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan uuid.UUID)
	for range min(removalWorkers, len(workspaces)) {
		wg.Go(func() {
			for ws := range next {
				if err := h.removeFrom(ctx, ws, cmd); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
	fed := 0
feed:
	for _, ws := range workspaces {
		select {
		case next <- ws:
			fed++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && fed < len(workspaces) {
		return ctx.Err() // the caller's context ended before every removal
	}
	return first
}

func (h DeleteAccountHandler) removeFrom(ctx context.Context, ws uuid.UUID, cmd DeleteAccount) error {
	_, err := h.w.updateAs(ctx, ws, cmd.Meta, func(w *domain.Workspace) error { return w.RemoveForDeletion(cmd.UserID) })
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.CodeLastAdmin {
		// Someone made the person the last Admin after the check.
		return &LastAdminError{Workspaces: []uuid.UUID{ws}, err: err}
	}
	if err != nil {
		return fmt.Errorf("remove from workspace %s: %w", ws, err)
	}
	return nil
}
