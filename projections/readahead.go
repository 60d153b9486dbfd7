package projections

import "context"

// ReadAhead overlaps reading with handling: read runs on a goroutine of its
// own and hands each item it reads to emit, while this goroutine passes
// them, in order and one at a time, to handle. At most depth items wait in
// between, which bounds the memory held in items read but not handled.
// Done in turn, the two cost the sum of their times; this way about the
// longer of them.
//
// It returns handle's first error, after read has seen the cancellation
// and ended, or else read's error. emit answers ctx's error once ctx ends
// (handle failed, or the caller's ctx ended): read should return it.
func ReadAhead[T any](ctx context.Context, depth int,
	read func(ctx context.Context, emit func(ctx context.Context, item T) error) error,
	handle func(ctx context.Context, item T) error,
) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan T, depth)
	readErr := make(chan error, 1)
	go func() {
		defer close(items)
		readErr <- read(ctx, func(ctx context.Context, item T) error {
			select {
			case items <- item:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for item := range items {
		if err := handle(ctx, item); err != nil {
			cancel()
			for range items { // let the reader see the cancellation and end
			}
			<-readErr
			return err
		}
	}
	return <-readErr
}
