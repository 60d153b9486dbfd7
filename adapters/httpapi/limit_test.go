package httpapi_test

import "testing"

// TestListLimitsAgree checks that the user list and the audit history take
// and refuse the same limits, and name the parameter alike.
func TestListLimitsAgree(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	ws, owner, pos := a.createWorkspace(t, "Limits", "admin@limits.test")
	adm := userToken(owner)
	base := "/v1/workspaces/" + ws.String()
	a.must(t, 200, req{method: "GET", path: base + "/audit", token: adm, headers: consistent(pos)})
	a.must(t, 200, req{method: "GET", path: base + "/users", token: adm, headers: consistent(pos)})
	for _, list := range []string{"/users", "/audit"} {
		for _, ok := range []string{"", "?limit=1", "?limit=500"} {
			a.must(t, 200, req{method: "GET", path: base + list + ok, token: adm})
		}
		for _, bad := range []string{"?limit=0", "?limit=-1", "?limit=501", "?limit=99999999999999999999", "?limit=abc", "?limit=1.5", "?limit="} {
			r := a.do(t, req{method: "GET", path: base + list + bad, token: adm})
			if r.status != 400 || r.code() != "invalid_input" || !fieldNamed(r, "limit") {
				t.Errorf("GET %s%s: got %d %s, want 400 invalid_input naming limit", list, bad, r.status, truncate(r.body))
			}
		}
	}
}
