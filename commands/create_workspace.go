package commands

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// CreateWorkspace opens a workspace whose owner is an active Admin at once.
// Only the system (the platform) sends it.
type CreateWorkspace struct {
	// WorkspaceID is the new workspace's id; zero makes a new one.
	WorkspaceID uuid.UUID
	Name        string
	OwnerEmail  string
	OwnerName   string
	Meta        Meta
}

// CreateWorkspaceResult says what was created.
type CreateWorkspaceResult struct {
	WorkspaceID uuid.UUID
	OwnerUserID uuid.UUID
	Position    domain.Position
}

type CreateWorkspaceHandler struct {
	w        writer
	accounts reserver
}

// NewCreateWorkspaceHandler returns the handler; accountIDs makes the
// owner's user id when the address has none yet (nil: RandomAccountIDs).
func NewCreateWorkspaceHandler(repo WorkspaceRepository, accounts Accounts, clock Clock, ids, accountIDs IDs) CreateWorkspaceHandler {
	return CreateWorkspaceHandler{newWriter(repo, clock, ids), newReserver(accounts, accountIDs)}
}

func (h CreateWorkspaceHandler) Handle(ctx context.Context, cmd CreateWorkspace) (CreateWorkspaceResult, error) {
	if !cmd.Meta.Actor.System {
		return CreateWorkspaceResult{}, domain.ErrNotAllowed
	}
	// Prepare: bad input is refused before the owner's account is
	// reserved, so that it writes nothing at all.
	spec, err := domain.ParseWorkspaceSpec(cmd.Name, cmd.OwnerEmail, cmd.OwnerName)
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	id := cmd.WorkspaceID
	if id == uuid.Nil {
		id = h.w.ids.NewID()
	}
	ids, err := h.accounts.reserve(ctx, []domain.Email{spec.OwnerEmail}, h.w.plainStamp(cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, fmt.Errorf("reserve owner account: %w", err)
	}
	owner := ids[spec.OwnerEmail]
	// Decide on a new workspace, and append it.
	w := domain.NewWorkspace(id)
	if err := w.Create(spec.Name, owner, spec.OwnerEmail, spec.OwnerName, h.w.clock.Now()); err != nil {
		return CreateWorkspaceResult{}, err
	}
	pos, err := h.w.repo.Create(ctx, w, h.w.stamp(cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	return CreateWorkspaceResult{WorkspaceID: id, OwnerUserID: owner, Position: pos}, nil
}

// reserver reserves accounts with user ids from its own source.
type reserver struct {
	accounts Accounts
	ids      IDs
}

func newReserver(accounts Accounts, ids IDs) reserver {
	if accounts == nil {
		panic("commands: no accounts")
	}
	if ids == nil {
		ids = RandomAccountIDs{}
	}
	return reserver{accounts, ids}
}

// reserve answers the user id of each address, registering the new ones.
func (r reserver) reserve(ctx context.Context, emails []domain.Email, meta func(domain.Event) domain.Metadata) (map[domain.Email]uuid.UUID, error) {
	return r.accounts.Resolve(ctx, emails, r.ids.NewID, meta)
}
