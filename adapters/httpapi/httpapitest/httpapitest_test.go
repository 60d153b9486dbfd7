package httpapitest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersd/usersd/adapters/httpapi/httpapitest"
)

func TestExchange(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "projection_lag", http.StatusGatewayTimeout)
			return
		}
		_, _ = w.Write([]byte(`{"results":[{"outcome":"invited"}],"position":"p1"}`))
	}))
	t.Cleanup(srv.Close)
	get := func(query string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/x"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var inv httpapitest.Invitations
	if err := httpapitest.Exchange(srv.Client(), get(""), http.StatusOK, &inv); err != nil || inv.Position != "p1" || inv.InvitedOne() != nil {
		t.Errorf("got %+v, %v; want one invited at p1", inv, err)
	}
	if err := httpapitest.Exchange(srv.Client(), get(""), http.StatusOK, nil); err != nil {
		t.Errorf("no out: got %v, want nil", err)
	}
	err := httpapitest.Exchange(srv.Client(), get("?fail=1"), http.StatusOK, nil)
	if err == nil || !strings.Contains(err.Error(), "GET /v1/x?fail=1: 504 projection_lag") {
		t.Errorf("got %v, want the request, the status and the body", err)
	}
	if err := httpapitest.Exchange(srv.Client(), get(""), http.StatusCreated, nil); err == nil {
		t.Errorf("200 where 201 is wanted: got no error")
	}
	if err := (httpapitest.Invitations{Results: []struct{ Outcome string }{{"already_member"}}}).InvitedOne(); err == nil {
		t.Errorf("already_member: got no error, want one")
	}
}

func TestFromClientsSendsEachOnce(t *testing.T) {
	t.Parallel()
	var seen [100]atomic.Int32
	httpapitest.FromClients(t, 4, "send", len(seen), func(_ int, i int64) error {
		seen[i].Add(1)
		return nil
	})
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("send %d ran %d times, want once", i, n)
		}
	}
}
