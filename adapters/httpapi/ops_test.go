package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/usersd/usersd/adapters/httpapi"
)

func TestReadyzAnswersNotReady(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, func(c *httpapi.Config) {
		c.Ready = func(context.Context) error { return errors.New("projections stopped") }
	})
	r := a.do(t, req{method: "GET", path: "/readyz"})
	if r.status != http.StatusServiceUnavailable || r.code() != "not_ready" {
		t.Errorf("GET /readyz while not ready: got %d %s, want 503 not_ready", r.status, r.body)
	}
	if r := a.do(t, req{method: "HEAD", path: "/readyz"}); r.status != http.StatusServiceUnavailable {
		t.Errorf("HEAD /readyz while not ready: got %d, want 503", r.status)
	}
	// Liveness does not depend on readiness.
	for _, path := range []string{"/healthz", "/openapi.yaml"} {
		if r := a.do(t, req{method: "HEAD", path: path}); r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: got %d with %d bytes, want 200 without a body", path, r.status, len(r.body))
		}
	}
}
