package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// UpdateSettings changes a workspace's settings; a nil field stays as it is.
type UpdateSettings struct {
	WorkspaceID           uuid.UUID
	ManagersMayGrantAdmin *bool
	Meta                  Meta
}

type UpdateSettingsHandler struct{ w writer }

func NewUpdateSettingsHandler(repo WorkspaceRepository, clock Clock, ids IDs) UpdateSettingsHandler {
	return UpdateSettingsHandler{newWriter(repo, clock, ids)}
}

func (h UpdateSettingsHandler) Handle(ctx context.Context, cmd UpdateSettings) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		s := w.Settings()
		if cmd.ManagersMayGrantAdmin != nil {
			s.ManagersMayGrantAdmin = *cmd.ManagersMayGrantAdmin
		}
		return w.UpdateSettings(cmd.Meta.Actor.UserID, s)
	})
}
