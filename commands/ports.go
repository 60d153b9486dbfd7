// Package commands holds one handler per command. A handler loads the
// workspace aggregate, lets it decide, and appends what it recorded with the
// loaded revision as the expected one; on a concurrency conflict it reloads
// and decides again, a bounded number of times.
package commands

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Stamp makes the metadata of one event the workspace w recorded.
type Stamp func(w *domain.Workspace, e domain.Event) domain.Metadata

// WorkspaceRepository keeps workspace aggregates. The transaction boundary
// stays with it: it loads, calls decide, and appends what decide recorded.
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
	// View loads workspace id and runs read on it without recording.
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

// Deps are what every handler needs. Secrets derives link secrets (an
// HMACLinkSecrets under the configured key in production).
type Deps struct {
	Workspaces WorkspaceRepository
	Accounts   Accounts
	Logins     Logins
	Clock      Clock
	// IDs makes the ids of workspaces, invitations and events.
	IDs IDs
	// AccountIDs makes user ids; nil is RandomAccountIDs. It is a source
	// of its own so that user ids never come from the time-ordered IDs.
	AccountIDs IDs
	Secrets    LinkSecrets
}

// ProductionDeps fills the sources of time and ids with the real ones.
// secrets must be the same derivation (the same key) in every replica and
// in the mailer, or the links the mailer builds will not match.
func ProductionDeps(ws WorkspaceRepository, accounts Accounts, logins Logins, secrets LinkSecrets) Deps {
	return Deps{Workspaces: ws, Accounts: accounts, Logins: logins, Clock: SystemClock{}, IDs: RandomIDs{}, AccountIDs: RandomAccountIDs{}, Secrets: secrets}
}

func (d Deps) check() {
	if d.Workspaces == nil || d.Accounts == nil || d.Logins == nil || d.Clock == nil || d.IDs == nil || d.Secrets == nil {
		panic("commands: every dependency must be set")
	}
}

// newAccountID makes a user id for a new account.
func (d Deps) newAccountID() uuid.UUID {
	if d.AccountIDs == nil {
		return RandomAccountIDs{}.NewID()
	}
	return d.AccountIDs.NewID()
}

// Meta is what a command knows of who sent it and why.
type Meta struct {
	// Actor is who acts: a member's user id, or the system. The actor's
	// e-mail is filled in from the workspace, as it is at that moment.
	Actor         domain.Actor
	CorrelationID string
	CausationID   string
	Request       *domain.RequestContext
}

// stamp returns the Stamp for a command's events. It reads m when the
// events are stamped, after the decision, so a decision may name the actor
// (an invitee accepting acts as themselves).
func (d Deps) stamp(m *Meta) Stamp {
	now := d.Clock.Now()
	return func(w *domain.Workspace, _ domain.Event) domain.Metadata {
		actor := m.Actor
		if w != nil && !actor.System && actor.Email == "" {
			if mem, ok := w.Member(actor.UserID); ok {
				actor.Email = string(mem.Email)
			}
		}
		return domain.Metadata{
			EventID: d.IDs.NewID(), SchemaVersion: domain.SchemaVersion, OccurredAt: now,
			Actor: actor, CorrelationID: m.CorrelationID, CausationID: m.CausationID, Request: m.Request,
		}
	}
}

func (d Deps) plainStamp(m *Meta) func(domain.Event) domain.Metadata {
	s := d.stamp(m)
	return func(e domain.Event) domain.Metadata { return s(nil, e) }
}

// maxAttempts bounds how often a command is decided again after another
// writer changed the workspace first.
const maxAttempts = 8

// update runs decide against the current workspace, retrying on conflicts.
func (d Deps) update(ctx context.Context, id uuid.UUID, m *Meta, decide func(w *domain.Workspace) error) (domain.Position, error) {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var pos domain.Position
		pos, err = d.Workspaces.Update(ctx, id, decide, d.stamp(m))
		if !errors.Is(err, domain.ErrConcurrency) {
			return pos, err
		}
		if err := conflictPause(ctx, attempt); err != nil {
			return domain.Position{}, err
		}
	}
	return domain.Position{}, fmt.Errorf("workspace %s: gave up after %d conflicting attempts: %w", id, maxAttempts, err)
}

// conflictPause waits a random while after the attempt-th conflict (up to 1,
// 2, 4 … 64 ms): replicas that keep colliding on one workspace spread out
// instead of one of them losing every race until it gives up.
func conflictPause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
