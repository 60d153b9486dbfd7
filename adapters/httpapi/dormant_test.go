package httpapi_test

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestDormantAccess: GET .../users with inactiveSince and sort (issue 17):
// members with no login since the instant, never logged in included and
// pending invitations not; sorted by last login both ways, never logged in
// first and last, ties by user id; pages of one row agree with the whole
// list; the other filters combine.
func TestDormantAccess(t *testing.T) {
	t.Parallel()
	a, ws, owner, adm := newAdminWorkspace(t, "Dormant", "owner@dormant.test")
	base := "/v1/workspaces/" + ws.String()
	early, _ := a.join(t, ws, adm, "early@dormant.test", "Editor")
	late, _ := a.join(t, ws, adm, "late@dormant.test", "Monitor")
	never, _ := a.join(t, ws, adm, "never@dormant.test", "Editor")
	_, pos := a.invite(t, ws, adm, "pending@dormant.test", "Editor")
	login := func(user uuid.UUID) string {
		r := a.must(t, 204, req{method: "POST", path: base + "/logins", token: systemToken, body: map[string]string{"userId": user.String()}})
		return r.header.Get("X-Position")
	}
	login(early)
	time.Sleep(20 * time.Millisecond)
	pos = login(late)

	type row struct {
		UserID      uuid.UUID  `json:"userId"`
		Email       string     `json:"email"`
		Status      string     `json:"status"`
		LastLoginAt *time.Time `json:"lastLoginAt"`
	}
	list := func(query url.Values) []row {
		t.Helper()
		var all []row
		for range 20 {
			var page struct {
				Items      []row   `json:"items"`
				NextCursor *string `json:"nextCursor"`
			}
			a.must(t, 200, req{method: "GET", path: base + "/users?" + query.Encode(), token: adm, headers: consistent(pos)}).json(t, &page)
			all = append(all, page.Items...)
			if page.NextCursor == nil {
				return all
			}
			query.Set("cursor", *page.NextCursor)
		}
		t.Fatal("the list does not end")
		return nil
	}
	emails := func(rows []row) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.Email
		}
		return out
	}
	all := list(url.Values{})
	var pending uuid.UUID
	for _, r := range all {
		if r.Status == "invited" {
			pending = r.UserID
		}
	}
	var earlyAt time.Time
	for _, r := range all {
		if r.UserID == early {
			earlyAt = *r.LastLoginAt
		}
	}
	// Never logged in: the owner, "never" and the invitation, by user id.
	neverIDs := []uuid.UUID{owner, never, pending}
	slices.SortFunc(neverIDs, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	byEmail := map[uuid.UUID]string{owner: "owner@dormant.test", never: "never@dormant.test", pending: "pending@dormant.test", early: "early@dormant.test", late: "late@dormant.test"}
	var wantAsc []string
	for _, id := range neverIDs {
		wantAsc = append(wantAsc, byEmail[id])
	}
	wantAsc = append(wantAsc, "early@dormant.test", "late@dormant.test")
	wantDesc := slices.Clone(wantAsc)
	slices.Reverse(wantDesc)

	since := earlyAt.Add(time.Millisecond).Format(time.RFC3339Nano)
	var wantDormant []string
	for _, e := range wantAsc {
		if e != "pending@dormant.test" && e != "late@dormant.test" {
			wantDormant = append(wantDormant, e)
		}
	}
	for _, tc := range []struct {
		query url.Values
		want  []string
	}{
		{url.Values{"sort": {"lastLoginAt"}}, wantAsc},
		{url.Values{"sort": {"lastLoginAt"}, "limit": {"1"}}, wantAsc},
		{url.Values{"sort": {"-lastLoginAt"}, "limit": {"2"}}, wantDesc},
		{url.Values{"sort": {"lastLoginAt"}, "inactiveSince": {since}, "limit": {"1"}}, wantDormant},
		{url.Values{"sort": {"-lastLoginAt"}, "inactiveSince": {since}}, reversed(wantDormant)},
		{url.Values{"sort": {"lastLoginAt"}, "inactiveSince": {since}, "role": {"editor"}}, filterOut(wantDormant, "owner@dormant.test")},
		{url.Values{"inactiveSince": {since}, "status": {"invited"}}, []string{}},
		{url.Values{"inactiveSince": {since}, "q": {"never"}}, []string{"never@dormant.test"}},
		// By name (the default): early, never, owner.
		{url.Values{"inactiveSince": {since}, "limit": {"1"}}, []string{"early@dormant.test", "never@dormant.test", "owner@dormant.test"}},
		{url.Values{"sort": {"displayName"}, "inactiveSince": {earlyAt.Add(-time.Millisecond).Format(time.RFC3339Nano)}}, []string{"never@dormant.test", "owner@dormant.test"}},
	} {
		if got := emails(list(tc.query)); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("?%s: got %v, want %v", tc.query.Encode(), got, tc.want)
		}
	}
}

func filterOut(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
