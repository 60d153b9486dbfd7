package memory_test

import (
	"testing"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/adapters/eventstore/memory"
)

func TestContract(t *testing.T) {
	t.Parallel()
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return memory.New() })
}
