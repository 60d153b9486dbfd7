package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// RecordLogin records that a member logged in. The member reports their own
// login; the system may report anyone's.
type RecordLogin struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Meta        Meta
}

type RecordLoginHandler struct{ d Deps }

func NewRecordLoginHandler(d Deps) RecordLoginHandler {
	d.check()
	return RecordLoginHandler{d}
}

func (h RecordLoginHandler) Handle(ctx context.Context, cmd RecordLogin) (domain.Position, error) {
	if !cmd.Meta.Actor.System && cmd.Meta.Actor.UserID != cmd.UserID {
		return domain.Position{}, domain.ErrNotAllowed
	}
	var login domain.UserLoggedIn
	var meta domain.Metadata
	stamp := h.d.stamp(&cmd.Meta)
	err := h.d.Workspaces.View(ctx, cmd.WorkspaceID, func(w *domain.Workspace) error {
		var err error
		login, err = w.Login(cmd.UserID, h.d.Clock.Now())
		if err == nil {
			meta = stamp(w, login)
		}
		return err
	})
	if err != nil {
		if !cmd.Meta.Actor.System && domain.ErrorCode(err) == domain.CodeUserNotFound {
			// A person reporting a login to a workspace they are not in
			// learns nothing about it.
			return domain.Position{}, domain.ErrWorkspaceNotFound
		}
		return domain.Position{}, err
	}
	return h.d.Logins.Record(ctx, login, meta)
}
