package commands

import (
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

func (c AcceptAuditDivergence) target() (uuid.UUID, Meta) { return c.WorkspaceID, c.Meta }

type AcceptAuditDivergenceHandler = workspaceHandler[AcceptAuditDivergence, domain.Position]

func NewAcceptAuditDivergenceHandler(repo WorkspaceRepository, clock Clock, ids IDs) AcceptAuditDivergenceHandler {
	return decides(repo, clock, ids, func(w *domain.Workspace, cmd AcceptAuditDivergence) error {
		return w.AcceptAuditDivergence(cmd.Seq, cmd.LiveHash, cmd.RebuiltHash)
	})
}
