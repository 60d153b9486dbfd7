package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/projections/audit"
)

// reviewItem is an item of GET .../access-reviews/{id}.
type reviewItem struct {
	UserID        uuid.UUID
	Email         *string
	DisplayName   *string
	Erased        bool
	Role          string
	Status        string
	StatusAtStart string
	GrantedBy     *reviewPerson
	Dormant       bool
	Decision      *string
	NewRole       *string
	DecidedBy     *reviewPerson
	Comment       *string
}

type reviewPerson struct {
	UserID      uuid.UUID
	Email, Name *string
	Erased      bool
}

type reviewView struct {
	ReviewID     uuid.UUID
	Name         string
	Status       string
	AsOfPosition string
	Decided      int
	StartedBy    *reviewPerson
	CompletedBy  *reviewPerson
	Items        []reviewItem
}

func (v reviewView) item(id uuid.UUID) (reviewItem, bool) {
	for _, it := range v.Items {
		if it.UserID == id {
			return it, true
		}
	}
	return reviewItem{}, false
}

// startReview starts a review as by: its id and position.
func (a *api) startReview(t testing.TB, ws uuid.UUID, by, name string) (uuid.UUID, string) {
	t.Helper()
	var out struct {
		ReviewID     uuid.UUID
		AsOfPosition string
		Items        int
		Position     string
	}
	a.must(t, http.StatusCreated, req{method: "POST", path: "/v1/workspaces/" + ws.String() + "/access-reviews", token: by,
		body: map[string]string{"name": name}}).json(t, &out)
	if out.AsOfPosition != out.Position || out.Items < 1 {
		t.Fatalf("start: %+v, want the population as of the start's own position", out)
	}
	return out.ReviewID, out.Position
}

func reviewBase(ws, id uuid.UUID) string {
	return "/v1/workspaces/" + ws.String() + "/access-reviews/" + id.String()
}

// decideItem decides on user and answers the problem code or the position.
func (a *api) decideItem(t testing.TB, ws, id, user uuid.UUID, by string, body map[string]string) resp {
	t.Helper()
	return a.do(t, req{method: "PUT", path: reviewBase(ws, id) + "/items/" + user.String(), token: by, body: body})
}

func (a *api) review(t testing.TB, ws, id uuid.UUID, by, pos string) reviewView {
	t.Helper()
	var v reviewView
	a.must(t, 200, req{method: "GET", path: reviewBase(ws, id), token: by, headers: consistent(pos)}).json(t, &v)
	return v
}

// completeReview keeps every undecided item and completes the review.
func (a *api) completeReview(t testing.TB, ws, id uuid.UUID, by, pos string) string {
	t.Helper()
	for _, it := range a.review(t, ws, id, by, pos).Items {
		if it.Decision == nil {
			a.must(t, 200, req{method: "PUT", path: reviewBase(ws, id) + "/items/" + it.UserID.String(), token: by, body: map[string]string{"decision": "keep"}})
		}
	}
	var p struct{ Position string }
	a.must(t, 200, req{method: "POST", path: reviewBase(ws, id) + "/complete", token: by}).json(t, &p)
	return p.Position
}

// TestAccessReviewLifecycle is issue 17's access review from end to end:
// start, a decision of each kind, a refused one (the last Admin) that
// records nothing, someone who joins after the start (absent) and someone
// removed meanwhile (removed), completion, and the evidence in its three
// forms with a signed audit head that checks out.
func TestAccessReviewLifecycle(t *testing.T) {
	t.Parallel()
	a, ws, owner, adm := newAdminWorkspace(t, "Acme", "owner@review.test")
	mia, _ := a.join(t, ws, adm, "mia@review.test", "Manager")
	ed, _ := a.join(t, ws, adm, "ed@review.test", "Editor")
	rob, _ := a.join(t, ws, adm, "rob@review.test", "Editor")
	sue, _ := a.join(t, ws, adm, "sue@review.test", "Monitor")
	mo, _ := a.join(t, ws, adm, "mo@review.test", "Monitor")
	a.must(t, 200, req{method: "POST", path: fmt.Sprintf("/v1/workspaces/%s/users/%s/suspend", ws, sue), token: adm})
	res, _ := a.invite(t, ws, adm, "pia@review.test", "Editor")
	pia := *res[0].UserID

	id, pos := a.startReview(t, ws, adm, "Q3 2026 access review")
	late, _ := a.join(t, ws, adm, "late@review.test", "Editor")
	a.must(t, 200, req{method: "DELETE", path: fmt.Sprintf("/v1/workspaces/%s/users/%s", ws, rob), token: adm})

	// The last active Admin cannot be revoked: 409, and no decision.
	before := a.workspaceEventCount(t)
	if r := a.decideItem(t, ws, id, owner, adm, map[string]string{"decision": "revoke"}); r.status != 409 || r.code() != "last_admin" {
		t.Fatalf("revoking the last Admin: %d %s, want 409 last_admin", r.status, r.body)
	}
	if r := a.decideItem(t, ws, id, owner, adm, map[string]string{"decision": "change_role", "role": "Editor"}); r.status != 409 || r.code() != "last_admin" {
		t.Fatalf("demoting the last Admin: %d %s, want 409 last_admin", r.status, r.body)
	}
	if r := a.decideItem(t, ws, id, late, adm, map[string]string{"decision": "keep"}); r.status != 404 || r.code() != "not_in_review" {
		t.Fatalf("deciding on someone who joined later: %d %s, want 404 not_in_review", r.status, r.body)
	}
	if n := a.workspaceEventCount(t); n != before {
		t.Fatalf("refused decisions appended %d events, want none", n-before)
	}

	for _, d := range []struct {
		user uuid.UUID
		body map[string]string
	}{
		{owner, map[string]string{"decision": "keep"}},
		{mia, map[string]string{"decision": "change_role", "role": "editor", "comment": "no longer manages the team"}},
		{ed, map[string]string{"decision": "keep", "comment": "=still edits"}},
		{sue, map[string]string{"decision": "revoke", "comment": "left in May"}},
		{pia, map[string]string{"decision": "revoke"}},
		{rob, map[string]string{"decision": "keep", "comment": "removed meanwhile"}},
	} {
		r := a.decideItem(t, ws, id, d.user, adm, d.body)
		if r.status != 200 {
			t.Fatalf("decide %v on %s: %d %s", d.body, d.user, r.status, r.body)
		}
		var p struct{ Position string }
		r.json(t, &p)
		pos = p.Position
	}
	// Mo is still undecided.
	r := a.do(t, req{method: "POST", path: reviewBase(ws, id) + "/complete", token: adm})
	if r.status != 409 || r.code() != "review_incomplete" || !bytes.Contains(r.body, []byte("1 of the review's 7 items")) {
		t.Fatalf("complete with an undecided item: %d %s, want 409 review_incomplete saying 1 of 7", r.status, r.body)
	}
	if r := a.do(t, req{method: "GET", path: reviewBase(ws, id) + "/evidence", token: adm, headers: consistent(pos)}); r.status != 409 || r.code() != "review_incomplete" {
		t.Fatalf("evidence of an open review: %d %s, want 409 review_incomplete", r.status, r.body)
	}
	a.must(t, 200, req{method: "PUT", path: reviewBase(ws, id) + "/items/" + mo.String(), token: adm, body: map[string]string{"decision": "keep"}})
	var done struct{ Position string }
	a.must(t, 200, req{method: "POST", path: reviewBase(ws, id) + "/complete", token: adm}).json(t, &done)
	if r := a.decideItem(t, ws, id, ed, adm, map[string]string{"decision": "revoke"}); r.status != 409 || r.code() != "review_completed" {
		t.Fatalf("deciding on a completed review: %d %s, want 409 review_completed", r.status, r.body)
	}
	if r := a.do(t, req{method: "POST", path: reviewBase(ws, id) + "/complete", token: adm}); r.status != 409 || r.code() != "review_completed" {
		t.Fatalf("completing twice: %d %s, want 409 review_completed", r.status, r.body)
	}

	// The review as a Monitor reads it.
	v := a.review(t, ws, id, userToken(mo), done.Position)
	if v.Status != "completed" || v.Decided != 7 || len(v.Items) != 7 || v.CompletedBy == nil || v.CompletedBy.UserID != owner {
		t.Fatalf("review: %+v, want completed by the owner, 7 items decided", v)
	}
	if _, in := v.item(late); in {
		t.Error("the member who joined after the start is in the review")
	}
	want := map[uuid.UUID]struct{ role, status, atStart, decision string }{
		owner: {"Admin", "active", "active", "keep"},
		mia:   {"Manager", "active", "active", "change_role"},
		ed:    {"Editor", "active", "active", "keep"},
		rob:   {"Editor", "removed", "active", "keep"},
		sue:   {"Monitor", "removed", "suspended", "revoke"},
		pia:   {"Editor", "removed", "invited", "revoke"},
		mo:    {"Monitor", "active", "active", "keep"},
	}
	for user, w := range want {
		it, ok := v.item(user)
		// The owner's role came with the workspace, from the platform: no
		// one granted it.
		grantedByOwner := it.GrantedBy != nil && it.GrantedBy.UserID == owner
		if !ok || it.Role != w.role || it.Status != w.status || it.StatusAtStart != w.atStart || it.Decision == nil || *it.Decision != w.decision ||
			it.DecidedBy == nil || it.DecidedBy.UserID != owner || grantedByOwner == (user == owner) {
			t.Errorf("item %s: %+v (found %v), want %+v decided by the owner, granted by the owner (the platform for the owner)", user, it, ok, w)
		}
	}
	if it, _ := v.item(mia); it.NewRole == nil || *it.NewRole != "Editor" || it.Comment == nil || *it.Comment != "no longer manages the team" {
		t.Errorf("Mia: %+v, want changed to Editor with the comment", it)
	}
	var list struct {
		Items []struct {
			ReviewID       uuid.UUID
			Status         string
			Items, Decided int
		}
	}
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/access-reviews", token: userToken(mo)}).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].ReviewID != id || list.Items[0].Items != 7 || list.Items[0].Decided != 7 || list.Items[0].Status != "completed" {
		t.Errorf("list: %+v, want the one completed review", list.Items)
	}

	// Mia's role change is an ordinary one, caused by the review.
	var entries struct {
		Items []struct {
			Action      string
			CausationID *string
			Seq         int64
			Hash        string
			EventID     uuid.UUID
		}
	}
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit?target=" + mia.String() + "&action=RoleChanged",
		token: adm, headers: consistent(done.Position)}).json(t, &entries)
	if len(entries.Items) != 1 || entries.Items[0].CausationID == nil || *entries.Items[0].CausationID != id.String() {
		t.Errorf("Mia's role change in the audit: %+v, want one, caused by the review %s", entries.Items, id)
	}
	a.must(t, 200, req{method: "GET", path: "/v1/workspaces/" + ws.String() + "/audit?action=AccessReviewCompleted",
		token: adm, headers: consistent(done.Position)}).json(t, &entries)
	if len(entries.Items) != 1 {
		t.Fatalf("the completion's audit entries: %+v, want one", entries.Items)
	}
	completion := entries.Items[0]

	// The evidence: JSON, with the head at the completion, signed.
	var keys struct{ Keys []audit.Key }
	a.must(t, 200, req{method: "GET", path: "/v1/audit/keys"}).json(t, &keys)
	var ev struct {
		Review struct {
			ReviewID                uuid.UUID
			Name, CompletedPosition string
			Items, Kept, Changed    int
			Revoked                 int
		}
		Items     []reviewItem
		AuditHead audit.SignedHead
	}
	a.must(t, 200, req{method: "GET", path: reviewBase(ws, id) + "/evidence", token: userToken(mo)}).json(t, &ev)
	if ev.Review.ReviewID != id || ev.Review.Items != 7 || ev.Review.Kept != 4 || ev.Review.Changed != 1 || ev.Review.Revoked != 2 || len(ev.Items) != 7 ||
		ev.Review.CompletedPosition != done.Position {
		t.Errorf("evidence: %+v, want the review's 7 items, 4 kept, 1 changed, 2 revoked, completed at %s", ev.Review, done.Position)
	}
	if h := ev.AuditHead; h.WorkspaceID != ws || h.Seq != completion.Seq || h.Hash != completion.Hash {
		t.Errorf("evidence head %+v, want the completion's entry %d %s", h, completion.Seq, completion.Hash)
	}
	if err := audit.VerifyHead(ev.AuditHead, keys.Keys); err != nil {
		t.Errorf("the evidence's signed head does not check with /v1/audit/keys: %v", err)
	}
	var verified struct{ OK, Missing bool }
	a.must(t, 200, req{method: "GET", path: fmt.Sprintf("/v1/workspaces/%s/audit/verify?contains=%d:%s", ws, ev.AuditHead.Seq, ev.AuditHead.Hash), token: adm}).json(t, &verified)
	if !verified.OK || verified.Missing {
		t.Errorf("the chain does not hold the evidence's head: %+v", verified)
	}

	// CSV: a row per item, spreadsheet-safe, with the head on each.
	r = a.must(t, 200, req{method: "GET", path: reviewBase(ws, id) + "/evidence", token: adm, headers: map[string]string{"Accept": "text/csv"}})
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("CSV evidence: Content-Type %q, Content-Disposition %q", ct, r.header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 8 || rows[0][0] != "workspaceId" {
		t.Fatalf("CSV evidence: %d rows, want a header and 7 items:\n%s", len(rows), r.body)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, row := range rows[1:] {
		if row[col["auditHash"]] != completion.Hash || row[col["auditSignature"]] == "" || row[col["reviewId"]] != id.String() {
			t.Errorf("CSV row %v: want the review and the signed head", row)
		}
		if row[col["userId"]] == ed.String() && row[col["comment"]] != "'=still edits" {
			t.Errorf("Ed's comment in CSV: %q, want it defused", row[col["comment"]])
		}
	}

	// NDJSON: the review, an item a line, the head.
	r = a.must(t, 200, req{method: "GET", path: reviewBase(ws, id) + "/evidence", token: adm, headers: map[string]string{"Accept": "application/x-ndjson"}})
	var types []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	var last audit.SignedHead
	for sc.Scan() {
		var line struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		types = append(types, line.Type)
		if line.Type == "auditHead" {
			if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(types) != 9 || types[0] != "review" || types[1] != "item" || types[8] != "auditHead" || last.Hash != completion.Hash {
		t.Errorf("NDJSON evidence: %v, head %+v; want review, 7 items, the head", types, last)
	}
	if err := audit.VerifyHead(last, keys.Keys); err != nil {
		t.Errorf("the NDJSON head: %v", err)
	}
}

// TestAccessReviewErrors: every refusal of the review endpoints, each a
// problem with its code, changing nothing.
func TestAccessReviewErrors(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Acme", "owner@errors.test")
	ed, _ := a.join(t, ws, adm, "ed@errors.test", "Editor")
	id, pos := a.startReview(t, ws, adm, "Q1")
	base := "/v1/workspaces/" + ws.String() + "/access-reviews"
	unknown := uuid.New()
	before := a.workspaceEventCount(t)
	for _, c := range []struct {
		name   string
		rq     req
		status int
		code   string
		field  string
	}{
		{"start without a name", req{method: "POST", path: base, body: map[string]string{}}, 400, "invalid_input", "name"},
		{"start with a blank name", req{method: "POST", path: base, body: map[string]string{"name": "  "}}, 400, "invalid_name", "name"},
		{"start with a long name", req{method: "POST", path: base, body: map[string]string{"name": strings.Repeat("n", 201)}}, 400, "invalid_name", "name"},
		{"start without a body", req{method: "POST", path: base}, 400, "invalid_json", ""},
		{"start with an unknown field", req{method: "POST", path: base, body: map[string]string{"name": "x", "nmae": "y"}}, 400, "invalid_json", ""},
		{"decide without a decision", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{}}, 400, "invalid_input", "decision"},
		{"decide something unknown", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "delete"}}, 400, "invalid_input", "decision"},
		{"change_role without a role", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "change_role"}}, 400, "invalid_input", "role"},
		{"change_role to an unknown role", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "change_role", "role": "Boss"}}, 400, "invalid_role", "role"},
		{"keep with a role", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "keep", "role": "Admin"}}, 400, "invalid_input", "role"},
		{"a comment too long", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "keep", "comment": strings.Repeat("c", 1001)}}, 400, "invalid_input", "comment"},
		{"a comment with a control character", req{method: "PUT", path: base + "/" + id.String() + "/items/" + ed.String(), body: map[string]string{"decision": "keep", "comment": "a\x07b"}}, 400, "invalid_input", "comment"},
		{"decide in an unknown review", req{method: "PUT", path: base + "/" + unknown.String() + "/items/" + ed.String(), body: map[string]string{"decision": "keep"}}, 404, "review_not_found", ""},
		{"decide on a stranger", req{method: "PUT", path: base + "/" + id.String() + "/items/" + unknown.String(), body: map[string]string{"decision": "keep"}}, 404, "not_in_review", ""},
		{"a review id that is not one", req{method: "PUT", path: base + "/42/items/" + ed.String(), body: map[string]string{"decision": "keep"}}, 400, "invalid_input", "id"},
		{"a user id that is not one", req{method: "PUT", path: base + "/" + id.String() + "/items/bob", body: map[string]string{"decision": "keep"}}, 400, "invalid_input", "userId"},
		{"complete an unknown review", req{method: "POST", path: base + "/" + unknown.String() + "/complete"}, 404, "review_not_found", ""},
		{"complete with undecided items", req{method: "POST", path: base + "/" + id.String() + "/complete"}, 409, "review_incomplete", ""},
		{"complete with a body", req{method: "POST", path: base + "/" + id.String() + "/complete", body: map[string]string{"force": "yes"}}, 400, "invalid_json", ""},
		{"read an unknown review", req{method: "GET", path: base + "/" + unknown.String(), headers: consistent(pos)}, 404, "review_not_found", ""},
		{"evidence of an unknown review", req{method: "GET", path: base + "/" + unknown.String() + "/evidence", headers: consistent(pos)}, 404, "review_not_found", ""},
		{"evidence of an open review", req{method: "GET", path: base + "/" + id.String() + "/evidence", headers: consistent(pos)}, 409, "review_incomplete", ""},
		{"a review of a workspace one is not in", req{method: "GET", path: "/v1/workspaces/" + unknown.String() + "/access-reviews/" + id.String()}, 404, "workspace_not_found", ""},
	} {
		c.rq.token = adm
		r := a.do(t, c.rq)
		if r.status != c.status || r.code() != c.code || (c.field != "" && !fieldNamed(r, c.field)) {
			t.Errorf("%s: %d %s, want %d %s naming %q", c.name, r.status, r.body, c.status, c.code, c.field)
		}
	}
	if n := a.workspaceEventCount(t); n != before {
		t.Errorf("refusals appended %d events, want none", n-before)
	}
	// At most 20 open reviews.
	for i := 1; i < 20; i++ {
		a.startReview(t, ws, adm, fmt.Sprintf("R%d", i))
	}
	if r := a.do(t, req{method: "POST", path: base, token: adm, body: map[string]string{"name": "R20"}}); r.status != 409 || r.code() != "too_many_open_reviews" {
		t.Errorf("a 21st open review: %d %s, want 409 too_many_open_reviews", r.status, r.body)
	}
}

// TestAccessReviewShowsErasedPeople: a person erased after a review shows
// in it by id, erased, with address, name and comment null, as an item and
// as the Admin who decided (api.md, "Erased people").
func TestAccessReviewShowsErasedPeople(t *testing.T) {
	t.Parallel()
	a, ws, _, adm := newAdminWorkspace(t, "Acme", "owner@erased.test")
	ann, _ := a.join(t, ws, adm, "ann@erased.test", "Admin")
	ed, _ := a.join(t, ws, adm, "ed@erased.test", "Editor")
	id, _ := a.startReview(t, ws, adm, "Q1")
	a.must(t, 200, req{method: "PUT", path: reviewBase(ws, id) + "/items/" + ed.String(), token: userToken(ann), body: map[string]string{"decision": "keep", "comment": "Ed is fine"}})
	var p struct{ Position string }
	a.must(t, 200, req{method: "PUT", path: reviewBase(ws, id) + "/items/" + ann.String(), token: adm, body: map[string]string{"decision": "keep", "comment": "Ann runs billing"}}).json(t, &p)
	var del struct{ Position string }
	a.must(t, 200, req{method: "DELETE", path: "/v1/accounts/" + ann.String(), token: systemToken, headers: consistent(p.Position)}).json(t, &del)
	done := a.completeReview(t, ws, id, adm, del.Position)
	v := a.review(t, ws, id, adm, done)
	it, _ := v.item(ann)
	if !it.Erased || it.Email != nil || it.DisplayName != nil || it.Comment != nil || it.Status != "removed" {
		t.Errorf("Ann's item: %+v, want erased, removed, without address, name or comment", it)
	}
	e, _ := v.item(ed)
	if e.DecidedBy == nil || e.DecidedBy.UserID != ann || !e.DecidedBy.Erased || e.DecidedBy.Email != nil || e.DecidedBy.Name != nil {
		t.Errorf("Ed decided by Ann: %+v, want {userId, erased: true} with address and name null", e.DecidedBy)
	}
	if e.Comment == nil || *e.Comment != "Ed is fine" || e.Erased {
		t.Errorf("Ed's item: %+v, want his comment kept", e)
	}
	r := a.must(t, 200, req{method: "GET", path: reviewBase(ws, id) + "/evidence", token: adm, headers: map[string]string{"Accept": "text/csv"}})
	if bytes.Contains(r.body, []byte("ann@erased.test")) || bytes.Contains(r.body, []byte("Ann runs billing")) {
		t.Errorf("the evidence holds Ann's erased values:\n%s", r.body)
	}
}
