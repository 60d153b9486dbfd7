package projections_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/usersd/usersd/projections"
)

func TestReadAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	count := func(n int, end error) func(context.Context, func(context.Context, int) error) error {
		return func(ctx context.Context, emit func(context.Context, int) error) error {
			for i := range n {
				if err := emit(ctx, i); err != nil {
					return err
				}
			}
			return end
		}
	}

	var got []int
	err := projections.ReadAhead(ctx, 1, count(100, nil), func(_ context.Context, i int) error {
		got = append(got, i)
		return nil
	})
	if want := 100; err != nil || len(got) != want || !slices.IsSorted(got) {
		t.Fatalf("got %d items (sorted: %v), err %v; want %d in order, nil", len(got), slices.IsSorted(got), err, want)
	}

	readFailed := errors.New("read failed")
	if err := projections.ReadAhead(ctx, 1, count(3, readFailed), func(context.Context, int) error { return nil }); !errors.Is(err, readFailed) {
		t.Errorf("a failed read: err %v, want %v", err, readFailed)
	}

	// A failed handle ends the reader, which would otherwise emit forever,
	// and its error is the answer, not the reader's cancellation.
	handleFailed := errors.New("handle failed")
	err = projections.ReadAhead(ctx, 1, func(ctx context.Context, emit func(context.Context, int) error) error {
		for i := 0; ; i++ {
			if err := emit(ctx, i); err != nil {
				return err
			}
		}
	}, func(_ context.Context, i int) error {
		if i == 5 {
			return handleFailed
		}
		return nil
	})
	if !errors.Is(err, handleFailed) {
		t.Errorf("a failed handle: err %v, want %v", err, handleFailed)
	}
}
