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
	// Refuse bad input before reserving the owner's account, so that it
	// writes nothing at all.
	spec, err := domain.ParseWorkspaceSpec(cmd.Name, cmd.OwnerEmail, cmd.OwnerName)
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	id := cmd.WorkspaceID
	if id == uuid.Nil {
		id = h.d.IDs.NewID()
	}
	ids, err := h.d.Accounts.Resolve(ctx, []domain.Email{spec.OwnerEmail}, h.d.newAccountID, h.d.plainStamp(&cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, fmt.Errorf("reserve owner account: %w", err)
	}
	owner := ids[spec.OwnerEmail]
	w := domain.NewWorkspace(id)
	if err := w.Create(spec.Name, owner, spec.OwnerEmail, spec.OwnerName, h.d.Clock.Now()); err != nil {
		return CreateWorkspaceResult{}, err
	}
	pos, err := h.d.Workspaces.Create(ctx, w, h.d.stamp(&cmd.Meta))
	if err != nil {
		return CreateWorkspaceResult{}, err
	}
	return CreateWorkspaceResult{WorkspaceID: w.ID(), OwnerUserID: owner, Position: pos}, nil
}
