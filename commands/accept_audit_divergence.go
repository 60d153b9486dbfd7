package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// AcceptAuditDivergence records, in a workspace's own history, that a
// rebuild of its audit may replace live entries that differ from the
// rebuilt ones from Seq on. usersd projections rebuild audit
// --accept-divergence issues it for each workspace that differs, before the
// swap; the actor is the platform (Meta.Actor.System).
type AcceptAuditDivergence struct {
	WorkspaceID           uuid.UUID
	Seq                   int64
	LiveHash, RebuiltHash string
	Meta                  Meta
}

type AcceptAuditDivergenceHandler struct{ w writer }

func NewAcceptAuditDivergenceHandler(repo WorkspaceRepository, clock Clock, ids IDs) AcceptAuditDivergenceHandler {
	return AcceptAuditDivergenceHandler{newWriter(repo, clock, ids)}
}

func (h AcceptAuditDivergenceHandler) Handle(ctx context.Context, cmd AcceptAuditDivergence) (domain.Position, error) {
	return h.w.updateAs(ctx, cmd.WorkspaceID, cmd.Meta, func(w *domain.Workspace) error {
		return w.AcceptAuditDivergence(cmd.Seq, cmd.LiveHash, cmd.RebuiltHash)
	})
}
