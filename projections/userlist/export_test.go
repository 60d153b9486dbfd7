package userlist

import (
	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// ListSQL answers the page query List runs for f, for EXPLAIN in tests.
func ListSQL(ws uuid.UUID, f Filter) (string, []any, error) {
	vf, err := validate(ws, f)
	if err != nil {
		return "", nil, err
	}
	sql, args := listSQL(ws, vf)
	return sql, args, nil
}

// Folder folds batches of events into rows in memory as Apply does between
// its read and its write, for BenchmarkFold: the rows of earlier batches
// stand for the rows Apply would read, the logins start anew each batch.
type Folder struct{ b *batch }

func NewFolder() *Folder {
	return &Folder{&batch{workspaces: make(map[uuid.UUID]*workspace), members: make(map[key]*memberRow)}}
}

// Fold folds one batch (what the list applies of it); false for an event apply has no case for.
func (f *Folder) Fold(events []domain.RecordedEvent) bool {
	b := f.b
	b.logins, b.deleted = make(map[key]*login), nil
	for _, m := range b.members {
		m.dirty = false
	}
	for _, ev := range events {
		if k, _, ok := memberOf(ev.Event); ok && b.members[k] == nil {
			b.members[k] = &memberRow{}
		}
	}
	for i := range events {
		if applied, _ := handling.Applied(events[i].Event); !applied {
			continue
		}
		ws, _ := domain.WorkspaceOf(events[i].Event)
		if !b.apply(&events[i], b.workspace(ws)) {
			return false
		}
	}
	return true
}
