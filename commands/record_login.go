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

type RecordLoginHandler struct {
	w      writer
	logins Logins
}

func NewRecordLoginHandler(repo WorkspaceRepository, logins Logins, clock Clock, ids IDs) RecordLoginHandler {
	if logins == nil {
		panic("commands: RecordLogin needs the logins")
	}
	return RecordLoginHandler{newWriter(repo, clock, ids), logins}
}

// Handle decides on the workspace without appending to it (View), and
// appends the login to the workspace's logins stream.
func (h RecordLoginHandler) Handle(ctx context.Context, cmd RecordLogin) (domain.Position, error) {
	if !cmd.Meta.Actor.System && cmd.Meta.Actor.UserID != cmd.UserID {
		return domain.Position{}, domain.ErrNotAllowed
	}
	var login domain.UserLoggedIn
	var meta domain.Metadata
	now, stamp := h.w.clock.Now(), h.w.stamp(cmd.Meta)
	err := h.w.repo.View(ctx, cmd.WorkspaceID, func(w *domain.Workspace) error {
		var err error
		login, err = w.Login(cmd.UserID, now)
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
	return h.logins.Record(ctx, login, meta)
}
