// Package commands is usersd's application: one handler per use case, all
// of one shape (Handler), gathered in an Application that cmd/usersd builds
// once and hands to the adapters (NewApplication).
//
// A command runs in three steps:
//
//   - prepare does all the I/O the decision needs, before it: reading the
//     workspace where the decision depends on what was read, reserving
//     accounts, drawing new ids and deriving link secrets;
//   - decide is pure: from the workspace's state, the command and the
//     prepared facts it records events or answers a domain error, and it may
//     run any number of times (WorkspaceRepository.Update runs it on a cached
//     state first, again after catching up, again after a conflict);
//   - append is the repository's: it stores what the last run of decide
//     recorded, expecting the revision decide saw, and retries a conflict a
//     bounded number of times (writer.update).
package commands

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ErrUnavailable marks the error of a store that did not answer (a node
// down, an election outlasting the retries): an outage, not a fault, which
// the adapters that drive the application answer as such (HTTP 503). The
// store adapters wrap it around what they give up on; callers test it with
// errors.Is.
var ErrUnavailable = errors.New("a store is unavailable")

// Stamp makes the metadata of one event the workspace w recorded.
type Stamp func(w *domain.Workspace, e domain.Event) domain.Metadata

// WorkspaceRepository keeps workspace aggregates. The transaction boundary
// stays with it: it loads, calls decide, and appends what decide recorded.
//
// decide must be pure: its only effect is what it records on w, and it may
// do no I/O (a command prepares what it needs before calling Update). The
// repository may run it more than once for one call (first on a cached
// workspace, then again on what the store holds when the cache turns out to
// be stale); what the last run recorded is what is appended, so a decide
// that hands results out through its closure must set them on every run.
type WorkspaceRepository interface {
	// Create appends a new workspace's recorded events; the workspace's
	// stream must not exist yet.
	Create(ctx context.Context, w *domain.Workspace, stamp Stamp) (domain.Position, error)
	// Update loads workspace id (an empty one if it has no events), runs
	// decide, and appends whatever it recorded, expecting the loaded
	// revision. It answers the position of the last event appended, or of
	// the workspace's last event when decide recorded nothing. A conflict
	// answers an error matching domain.ErrConcurrency.
	Update(ctx context.Context, id uuid.UUID, decide func(w *domain.Workspace) error, stamp Stamp) (domain.Position, error)
	// View loads workspace id, as the store holds it now, and runs read on
	// it once, without recording.
	View(ctx context.Context, id uuid.UUID, read func(w *domain.Workspace) error) error
}

// Accounts reserves one user id per normalised e-mail address, across all
// workspaces: two workspaces inviting the same new person, at the same
// moment, get the same id.
type Accounts interface {
	Resolve(ctx context.Context, emails []domain.Email, newID func() uuid.UUID, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error)
}

// Logins records logins away from the workspace stream.
type Logins interface {
	Record(ctx context.Context, e domain.UserLoggedIn, meta domain.Metadata) (domain.Position, error)
}

// Clock tells the time.
type Clock interface{ Now() time.Time }

// IDs makes new unique ids.
type IDs interface{ NewID() uuid.UUID }

// SystemClock is the real clock, in UTC and to the microsecond, as both
// stores keep times.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// RandomIDs makes version 7 UUIDs: random but time-ordered, so the indexes
// keyed by them (event ids above all) grow at their right edge instead of
// splitting pages all over.
type RandomIDs struct{}

func (RandomIDs) NewID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// RandomAccountIDs makes version 4 UUIDs, wholly random, for accounts
// (user ids): a user id reaches everyone who invites the person, and a
// version 7 id would tell them when the account was made.
type RandomAccountIDs struct{}

func (RandomAccountIDs) NewID() uuid.UUID { return uuid.New() }

// Meta is what a command knows of who sent it and why.
type Meta struct {
	// Actor is who acts: a member's user id, or the system. The actor's
	// e-mail is filled in from the workspace, as it is at that moment.
	Actor         domain.Actor
	CorrelationID string
	CausationID   string
	Request       *domain.RequestContext
}
