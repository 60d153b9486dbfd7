package pause_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/pause"
)

func TestForWaits(t *testing.T) {
	t.Parallel()
	if err := pause.For(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("For(1ms) = %v, want nil", err)
	}
}

func TestForEndsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pause.For(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("For on a cancelled context = %v, want context.Canceled", err)
	}
}
