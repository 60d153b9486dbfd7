package httpapi_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/usersd/usersd/adapters/httpapi"
)

type observation struct {
	method, route string
	status        int
	code          string
}

// observations records what the API tells its observer.
type observations struct {
	mu  sync.Mutex
	all []observation
}

func (o *observations) ObserveRequest(method, route string, status int, code string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, observation{method, route, status, code})
}

func (o *observations) has(want observation) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, got := range o.all {
		if got == want {
			return true
		}
	}
	return false
}

// Every answered request reaches the observer with its route template
// (never the path with its ids) and, for a problem, the problem's code:
// what /metrics counts requests and command outcomes by.
func TestEveryRequestIsObserved(t *testing.T) {
	t.Parallel()
	obs := &observations{}
	a := newAPIWith(t, func(c *httpapi.Config) { c.Observer = obs })
	ws, owner, pos := a.createWorkspace(t, "Observed", "owner@observed.test")
	a.must(t, http.StatusBadRequest, req{method: "PUT", path: "/v1/workspaces/" + ws.String() + "/users/" + owner.String() + "/role",
		token: userToken(owner), body: map[string]string{"role": "Overlord"}})
	a.must(t, http.StatusOK, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/users", token: userToken(owner),
		headers: map[string]string{"X-Consistent-With": pos}})
	for _, want := range []observation{
		{"POST", "/v1/workspaces", http.StatusCreated, ""},
		{"PUT", "/v1/workspaces/{ws}/users/{userId}/role", http.StatusBadRequest, "invalid_role"},
		{"GET", "/v1/workspaces/{ws}/users", http.StatusOK, ""},
	} {
		// The observer hears of a request once its answer is written,
		// which the client may see a moment before.
		deadline := time.Now().Add(5 * time.Second)
		for !obs.has(want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !obs.has(want) {
			obs.mu.Lock()
			t.Errorf("observer never heard of %+v; heard %+v", want, obs.all)
			obs.mu.Unlock()
		}
	}
}
