package projections_test

import (
	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/internal/pii"
)

// testKeys and testCodec seal and open the tests' events: one keyring, as
// the replicas of one deployment share one.
var (
	testKeys  = pii.NewMemoryKeyring()
	testCodec = eventstore.NewCodec(testKeys, []byte("the tests' stream-name key, 32 B"))
)
