package commands

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// UpdateSettings changes a workspace's settings; a nil field stays as it is.
type UpdateSettings struct {
	WorkspaceID           uuid.UUID
	ManagersMayGrantAdmin *bool
	Meta                  Meta
}

func (c UpdateSettings) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type UpdateSettingsHandler = workspaceHandler[UpdateSettings, domain.Position]

func NewUpdateSettingsHandler(repo WorkspaceRepository, clock Clock, ids IDs) UpdateSettingsHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd UpdateSettings) error {
		s := w.Settings()
		if cmd.ManagersMayGrantAdmin != nil {
			s.ManagersMayGrantAdmin = *cmd.ManagersMayGrantAdmin
		}
		return w.UpdateSettings(cmd.Meta.Actor.UserID, s)
	})
}
