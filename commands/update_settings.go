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

type UpdateSettingsHandler struct{ d Deps }

func NewUpdateSettingsHandler(d Deps) UpdateSettingsHandler {
	d.check()
	return UpdateSettingsHandler{d}
}

func (h UpdateSettingsHandler) Handle(ctx context.Context, cmd UpdateSettings) (domain.Position, error) {
	return h.d.update(ctx, cmd.WorkspaceID, &cmd.Meta, func(w *domain.Workspace) error {
		s := w.Settings()
		if cmd.ManagersMayGrantAdmin != nil {
			s.ManagersMayGrantAdmin = *cmd.ManagersMayGrantAdmin
		}
		return w.UpdateSettings(cmd.Meta.Actor.UserID, s)
	})
}
