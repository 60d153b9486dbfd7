package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// TestAPersonErasedMeanwhileIsAConflict: a command that seals for a person
// whose key another replica destroyed while it ran gets the keyring's
// ErasedError back through the codec; it answers 409, to be retried (the
// address then gets a new account), never 500.
func TestAPersonErasedMeanwhileIsAConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := pii.NewMemoryKeyring()
	jane := uuid.New()
	if err := keys.Destroy(ctx, jane); err != nil {
		t.Fatal(err)
	}
	_, err := keys.Ensure(ctx, []uuid.UUID{jane})
	err = fmt.Errorf("append to workspace-x: encode UserInvited: %w", err) // as the repository wraps it
	p := toProblem(err, nil)
	if p.Code != domain.CodeConcurrencyConflict || statusOf[p.Code] != http.StatusConflict {
		t.Fatalf("toProblem(%v) = %s (%d), want %s 409", err, p.Code, statusOf[p.Code], domain.CodeConcurrencyConflict)
	}
}
