package history

import "github.com/usersd/usersd/domain"

// Fold folds the workspace events of a history that the projection
// applies into rows in memory, as Apply does between its read and its
// write, from the start (nothing to read), for BenchmarkFold; false for an
// event applyEvent has no case for.
func Fold(events []domain.RecordedEvent) bool {
	rows := make(map[key]*row)
	for i := range events {
		applied, _ := handling.Applied(events[i].Event)
		if _, ok := domain.WorkspaceOf(events[i].Event); !applied || !ok {
			continue
		}
		if !applyEvent(rows, &events[i]) {
			return false
		}
	}
	return true
}
