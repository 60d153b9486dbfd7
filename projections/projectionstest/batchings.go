package projectionstest

import (
	"fmt"

	"github.com/usersd/usersd/domain"
)

// Batchings cuts a history into the ways a runner may hand it to a
// projection, for tests that every way leaves the same tables as one batch:
// batches of 1, 2, 5 and 17 events ("size_N"), and a crash replay
// ("replays": the tail again after the whole history, and a batch that is
// a duplicate of itself). The history needs at least 20 events.
func Batchings(ev []domain.RecordedEvent) map[string][][]domain.RecordedEvent {
	batchings := map[string][][]domain.RecordedEvent{
		"replays": {ev[:len(ev)/2], ev[len(ev)/3:], ev[len(ev)/2:], append(append([]domain.RecordedEvent{}, ev[10:20]...), ev[10:20]...), ev[5:15]},
	}
	for _, size := range []int{1, 2, 5, 17} {
		var b [][]domain.RecordedEvent
		for i := 0; i < len(ev); i += size {
			b = append(b, ev[i:min(i+size, len(ev))])
		}
		batchings[fmt.Sprintf("size_%d", size)] = b
	}
	return batchings
}
