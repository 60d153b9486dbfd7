package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// workspaceCommand is a command that makes one decision on one workspace.
// target names that workspace and the metadata its events are stamped
// with: who acts and why. Usually that is the command's own Meta; a
// command the system runs answers system(...), and a review decision names
// the review as the cause, so target is where those rules are written.
type workspaceCommand interface {
	target() (workspace uuid.UUID, m Meta)
}

// decision is what a command prepared before deciding (its input parsed,
// its ids and the time drawn): decide, pure, which the repository runs on
// the workspace, and answer, the command's result from what the last run of
// decide left and the position of the append.
type decision[R any] struct {
	decide func(w *domain.Workspace) error
	answer func(at domain.Position) R
}

// workspaceHandler handles a workspaceCommand: prepare, then decide on its
// workspace and append (writer.updateAs, with the target's metadata), then
// answer. Most commands are one: each builds its handler from its own
// prepare, or from its decision alone (decides).
type workspaceHandler[C workspaceCommand, R any] struct {
	w       writer
	prepare func(cmd C) (decision[R], error)
}

func newWorkspaceHandler[C workspaceCommand, R any](repo WorkspaceRepository, clock Clock, ids IDs, prepare func(cmd C) (decision[R], error)) workspaceHandler[C, R] {
	return workspaceHandler[C, R]{newWriter(repo, clock, ids), prepare}
}

// Handle prepares cmd, runs its decision on the target workspace (as many
// times as the repository needs: it is pure) and appends what it recorded,
// then answers the result the last run left.
func (h workspaceHandler[C, R]) Handle(ctx context.Context, cmd C) (R, error) {
	var none R
	d, err := h.prepare(cmd)
	if err != nil {
		return none, err
	}
	id, m := cmd.target()
	pos, err := h.w.updateAs(ctx, id, m, d.decide)
	if err != nil {
		return none, err
	}
	return d.answer(pos), nil
}

// decides builds the handler of a command that needs nothing prepared and
// answers the position of its append.
func decides[C workspaceCommand](repo WorkspaceRepository, clock Clock, ids IDs, decide func(w *domain.Workspace, cmd C) error) workspaceHandler[C, domain.Position] {
	return newWorkspaceHandler(repo, clock, ids, func(cmd C) (decision[domain.Position], error) {
		return atPosition(func(w *domain.Workspace) error { return decide(w, cmd) }), nil
	})
}

// atPosition is the decision of a command whose result is the position of
// its append.
func atPosition(decide func(w *domain.Workspace) error) decision[domain.Position] {
	return decision[domain.Position]{decide: decide, answer: func(at domain.Position) domain.Position { return at }}
}
