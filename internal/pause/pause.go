// Package pause waits for a while unless a context ends first: the one
// helper every layer's retry loop uses (domain, commands, projections and
// the adapters may all import it; it imports the standard library only,
// .ci/lint-imports.sh).
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends, then answers ctx's error.
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
