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

type CreateWorkspaceHandler struct{ d Deps }

func NewCreateWorkspaceHandler(d Deps) CreateWorkspaceHandler {
	d.check()
	return CreateWorkspaceHandler{d}
}

func (h CreateWorkspaceHandler) Handle(ctx context.Context, cmd CreateWorkspace) (CreateWorkspaceResult, error) {
	if !cmd.Meta.Actor.System {
		return CreateWorkspaceResult{}, domain.ErrNotAllowed
	}
	email, err := domain.NormalizeEmail(cmd.OwnerEmail)
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	id := cmd.WorkspaceID
	if id == uuid.Nil {
		id = h.d.IDs.NewID()
	}
	w := domain.NewWorkspace(id)
	// Validate before reserving the owner's account, so bad input writes
	// nothing at all.
	if err := w.Create(cmd.Name, uuid.Max, email, cmd.OwnerName, h.d.Clock.Now()); err != nil {
		return CreateWorkspaceResult{}, err
	}
	w.Discard()
	ids, err := h.d.Accounts.Resolve(ctx, []domain.Email{email}, h.d.newAccountID, h.d.plainStamp(&cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, fmt.Errorf("reserve owner account: %w", err)
	}
	owner := ids[email]
	if err := w.Create(cmd.Name, owner, email, cmd.OwnerName, h.d.Clock.Now()); err != nil {
		return CreateWorkspaceResult{}, err
	}
	pos, err := h.d.Workspaces.Create(ctx, w, h.d.stamp(&cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	return CreateWorkspaceResult{WorkspaceID: w.ID(), OwnerUserID: owner, Position: pos}, nil
}
