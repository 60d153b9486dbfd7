package webhooks

import (
	"net/http"
	"time"
)

// NewClientForTest is the deliveries' HTTP client under g.
func NewClientForTest(g Guard) *http.Client { return newClient(g, 5*time.Second, nil) }
