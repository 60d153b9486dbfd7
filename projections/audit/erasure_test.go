package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/projectionstest"
)

// erasure is a sealed history in which Ivy, a member of two workspaces,
// deletes her account: she is removed from both (reason account_deleted),
// then AccountDeleted. Olga owns both workspaces and stays.
type erasure struct {
	keys       *pii.MemoryKeyring
	olga, ivy  person
	ivyName    string
	bounce     string
	a, b       uuid.UUID
	events     []domain.RecordedEvent
	ivyEntries int // entries with Ivy as actor or target, in a and b
}

func newErasure(t *testing.T) *erasure {
	t.Helper()
	var h history
	e := &erasure{
		keys: pii.NewMemoryKeyring(), olga: newPerson("olga@acme.test"), ivy: newPerson("Ivy.Ivanova@Example.test"),
		ivyName: "Ivy Ivanova", a: uuid.New(), b: uuid.New(),
	}
	e.bounce = "550 5.1.1 <" + e.ivy.email + ">: no such user"
	olga, ivy := e.olga, e.ivy
	req := func(p person) opt { return withRequest("198.51.100."+p.email[:1], "Agent of "+p.email) }
	for _, ws := range []uuid.UUID{e.a, e.b} {
		inv := uuid.New()
		e.events = append(e.events,
			h.next(domain.WorkspaceCreated{WorkspaceID: ws, Name: "Acme", OwnerUserID: olga.id, OwnerEmail: olga.email, OwnerName: "Olga O."},
				by(olga.actor()), req(olga)),
			h.next(domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: ivy.id, Email: ivy.email, Role: "Editor",
				InvitedBy: olga.id, InviterRole: "Admin", ExpiresAt: t0.AddDate(0, 0, 7)}, by(olga.actor()), req(olga)),
			h.next(domain.InvitationEmailFailed{WorkspaceID: ws, InvitationID: inv, UserID: ivy.id, Attempt: 1, Reason: e.bounce}),
			h.next(domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: ivy.id, Email: ivy.email, Name: e.ivyName,
				Role: "Editor", AcceptedAt: t0}, by(ivy.actor()), req(ivy)),
			h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: ivy.id, LoggedInAt: t0}, by(ivy.actor()), req(ivy)),
			h.next(domain.MemberRemoved{WorkspaceID: ws, UserID: ivy.id, Email: ivy.email, Role: "Editor", Reason: domain.ReasonAccountDeleted}),
		)
	}
	e.ivyEntries = 2 * 5
	e.events = append(e.events, h.next(domain.AccountDeleted{UserID: ivy.id, DeletedAt: t0}))
	projectionstest.SealAll(t, e.keys, e.events)
	return e
}

// entries lists a workspace's entries opened with the erasure's keys,
// oldest first.
func (e *erasure) entries(t *testing.T, pool *pgxpool.Pool, ws uuid.UUID) []audit.Entry {
	t.Helper()
	page, err := audit.List(context.Background(), pool, e.keys, ws, audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := page.Items
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// everything answers every row of the audit tables as text, for looking
// for personal values in clear.
func everything(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(e::text, E'\n') FROM audit_entries e), '') || E'\n' ||
		coalesce((SELECT string_agg(u::text, E'\n') FROM audit_user_emails u), '')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestApplySealed: entries copy the events as stored, so the tables hold
// no personal value in clear; the hashes cover the sealed strings, and
// List opens them again with the keys.
func TestApplySealed(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	apply(t, pool, e.events[:len(e.events)-1]) // before the deletion
	stored := strings.ToLower(everything(t, pool))
	for _, v := range []string{e.ivy.email, e.olga.email, e.ivyName, "Olga O.", e.bounce, "198.51.100.", "agent of"} {
		if strings.Contains(stored, strings.ToLower(v)) {
			t.Errorf("the audit tables hold %q in clear", v)
		}
	}
	if !strings.Contains(stored, pii.Prefix) {
		t.Errorf("the audit tables hold no sealed value")
	}
	if res := verify(t, pool, e.a); !res.OK || res.Entries != 6 {
		t.Errorf("Verify: got %+v, want ok with 6 entries", res)
	}

	es := e.entries(t, pool, e.a)
	created, failed, accepted, login, removed := es[0], es[2], es[3], es[4], es[5]
	if created.Actor.Email != e.olga.email || created.Target.Email != e.olga.email || created.Request.IP != "198.51.100.o" ||
		created.Request.UserAgent != "Agent of "+e.olga.email || !jsonHas(created.Details, "ownerName", "Olga O.") || !jsonHas(created.Details, "name", "Acme") {
		t.Errorf("WorkspaceCreated opened: got %+v %+v %s", created.Actor, created.Request, created.Details)
	}
	if !pii.IsSealed(created.Sealed.ActorEmail) || !pii.IsSealed(created.Sealed.RequestIP) || !strings.Contains(string(created.Sealed.Details), `"ownerName":"pii1.`) {
		t.Errorf("WorkspaceCreated stored: got %+v, want the personal values sealed", created.Sealed)
	}
	if failed.Target.Email != e.ivy.email || !jsonHas(failed.Details, "reason", e.bounce) {
		t.Errorf("InvitationEmailFailed opened: got %+v %s, want the remembered address and the reason", failed.Target, failed.Details)
	}
	if accepted.Actor.Email != e.ivy.email || !jsonHas(accepted.Details, "name", e.ivyName) {
		t.Errorf("InvitationAccepted opened: got %+v %s", accepted.Actor, accepted.Details)
	}
	if login.Target.Email != e.ivy.email || login.Target.Erased || login.Actor.Erased {
		t.Errorf("UserLoggedIn opened: got %+v %+v", login.Actor, login.Target)
	}
	if !jsonHas(removed.Details, "reason", domain.ReasonAccountDeleted) {
		t.Errorf("MemberRemoved details: got %s, want reason %q", removed.Details, domain.ReasonAccountDeleted)
	}
}

// TestErasure: once Ivy's account is deleted and her key destroyed, her
// remembered addresses are gone, every entry about her or by her shows her
// as erased with her personal values null, Olga's stay as they were; the
// chain is the same byte for byte and verifies, online without keys and
// offline from an export that holds nothing of Ivy's in clear.
func TestErasure(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	ctx := context.Background()
	apply(t, pool, e.events[:len(e.events)-1])
	before := chain(t, pool, "public")
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_user_emails WHERE user_id = $1`, e.ivy.id).Scan(&n); err != nil || n != 2 {
		t.Fatalf("Ivy's remembered addresses before the deletion: got %d (%v), want 2", n, err)
	}

	apply(t, pool, e.events[len(e.events)-1:]) // AccountDeleted
	if err := e.keys.Destroy(ctx, e.ivy.id); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_user_emails WHERE user_id = $1`, e.ivy.id).Scan(&n); err != nil || n != 0 {
		t.Errorf("Ivy's remembered addresses after the deletion: got %d (%v), want 0", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_user_emails WHERE user_id = $1`, e.olga.id).Scan(&n); err != nil || n != 2 {
		t.Errorf("Olga's remembered addresses after Ivy's deletion: got %d (%v), want 2", n, err)
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("the chain changed with the deletion (AccountDeleted has no entry):\n got %v\nwant %v", after, before)
	}

	for _, ws := range []uuid.UUID{e.a, e.b} {
		if res := verify(t, pool, ws); !res.OK || res.Entries != 6 {
			t.Errorf("Verify %s after the erasure: got %+v, want ok with 6 entries", ws, res)
		}
		es := e.entries(t, pool, ws)
		created := es[0]
		if created.Actor.Email != e.olga.email || created.Actor.Erased || !jsonHas(created.Details, "ownerName", "Olga O.") {
			t.Errorf("Olga's entry after Ivy's erasure: got %+v %s", created.Actor, created.Details)
		}
		for _, en := range es[1:] {
			if en.Target == nil || en.Target.ID != e.ivy.id || !en.Target.Erased || en.Target.Email != "" {
				t.Errorf("%s (seq %d): target %+v, want Ivy erased", en.Action, en.Seq, en.Target)
			}
			if en.Actor.ID == e.ivy.id && (!en.Actor.Erased || en.Actor.Email != "" || en.Request.IP != "" || en.Request.UserAgent != "") {
				t.Errorf("%s (seq %d): actor %+v request %+v, want Ivy erased", en.Action, en.Seq, en.Actor, en.Request)
			}
		}
		if accepted := es[3]; !jsonHas(accepted.Details, "name", nil) || !jsonHas(accepted.Details, "role", "Editor") {
			t.Errorf("InvitationAccepted details after the erasure: got %s, want name null, role kept", accepted.Details)
		}
		if failed := es[2]; !jsonHas(failed.Details, "reason", nil) {
			t.Errorf("InvitationEmailFailed details after the erasure: got %s, want reason null", failed.Details)
		}
		b, _ := json.Marshal(es[4])
		var got struct{ Actor, Target map[string]any }
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"id": e.ivy.id.String(), "email": nil, "erased": true}
		if delete(got.Actor, "system"); !reflect.DeepEqual(got.Actor, want) || !reflect.DeepEqual(got.Target, want) {
			t.Errorf("UserLoggedIn JSON after the erasure: actor %v, target %v, want %v", got.Actor, got.Target, want)
		}

		s := newSigner(t, seed(5))
		var buf bytes.Buffer
		if err := audit.ExportSigned(ctx, pool, e.keys, ws, audit.Filter{}, &buf, audit.FormatNDJSON, s); err != nil {
			t.Fatal(err)
		}
		if rep, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), s.Keys(), audit.ExportCheck{}); err != nil || !rep.OK || rep.Entries != 6 {
			t.Errorf("offline verification of the export after the erasure: got %+v (%v), want ok with 6 entries", rep, err)
		}
		noIvy(t, "NDJSON export", buf.String(), e)
		buf.Reset()
		if err := audit.Export(ctx, pool, e.keys, ws, audit.Filter{}, &buf, audit.FormatCSV); err != nil {
			t.Fatal(err)
		}
		noIvy(t, "CSV export", buf.String(), e)
		records, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(records) != 7 {
			t.Fatalf("CSV export: %d records (%v)", len(records), err)
		}
		if last := records[6]; last[len(last)-1] != "true" || last[9] != "" {
			t.Errorf("CSV of MemberRemoved after the erasure: got %q, want targetEmail empty and targetErased true", last)
		}
	}
}

func noIvy(t *testing.T, what, s string, e *erasure) {
	t.Helper()
	for _, v := range []string{e.ivy.email, e.ivyName, e.bounce, "agent of " + e.ivy.email} {
		if strings.Contains(strings.ToLower(s), strings.ToLower(v)) {
			t.Errorf("%s after the erasure holds %q", what, v)
		}
	}
}

// TestRebuildAfterErasure: the events read back after the erasure (Ivy's
// values "" in Envelope, sealed as ever in Stored) rebuild the very same
// chain: the rebuild finds no divergence, and the hashes are those of the
// history built before.
func TestRebuildAfterErasure(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	apply(t, pool, e.events)
	before := chain(t, pool, "public")
	if err := e.keys.Destroy(context.Background(), e.ivy.id); err != nil {
		t.Fatal(err)
	}
	reread := projectionstest.ReopenAll(t, e.keys, e.events)
	if acc := reread[3].Event.(domain.InvitationAccepted); acc.Name != "" || acc.Email != "" || len(reread[3].Erased) != 1 {
		t.Fatalf("reopened after the erasure: got %+v erased %v, want Ivy's values empty", acc, reread[3].Erased)
	}
	if _, err := projections.Rebuild(context.Background(), pool, audit.New(), projections.SliceSource(reread), projections.RebuildOptions{}); err != nil {
		t.Fatalf("Rebuild after the erasure: %v", err)
	}
	if after := chain(t, pool, "public"); !reflect.DeepEqual(after, before) {
		t.Errorf("chain rebuilt after the erasure:\n got %v\nwant %v", after, before)
	}
	if res := verify(t, pool, e.a); !res.OK || res.Entries != 6 {
		t.Errorf("Verify after the rebuild: got %+v", res)
	}
}

// TestForPerson: a person's entries across every workspace, as actor or
// target, opened; none of anyone else's; through the indexes that lead with
// the user id.
func TestForPerson(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	h := afterFixtures()
	other := uuid.New()
	stranger := newPerson("stranger@example.test")
	extra := []domain.RecordedEvent{
		h.next(domain.WorkspaceCreated{WorkspaceID: other, Name: "Other", OwnerUserID: stranger.id, OwnerEmail: stranger.email, OwnerName: "S"}, by(stranger.actor())),
		h.next(domain.WorkspaceSettingsChanged{WorkspaceID: other, ManagersMayGrantAdmin: true}, by(stranger.actor())),
	}
	apply(t, pool, append(e.events, projectionstest.SealAll(t, e.keys, extra)...))
	ctx := context.Background()

	collect := func(user uuid.UUID) []audit.Entry {
		var out []audit.Entry
		if err := audit.ForPerson(ctx, pool, e.keys, user, func(en audit.Entry) error { out = append(out, en); return nil }); err != nil {
			t.Fatalf("ForPerson: %v", err)
		}
		return out
	}
	got := collect(e.ivy.id)
	if len(got) != e.ivyEntries {
		t.Fatalf("ForPerson(Ivy): got %d entries, want %d", len(got), e.ivyEntries)
	}
	seen := map[uuid.UUID]int{}
	for i, en := range got {
		seen[en.WorkspaceID]++
		if en.Actor.ID != e.ivy.id && (en.Target == nil || en.Target.ID != e.ivy.id) {
			t.Errorf("ForPerson(Ivy) answered %s seq %d, not about Ivy", en.Action, en.Seq)
		}
		if i > 0 && (en.WorkspaceID.String() < got[i-1].WorkspaceID.String() ||
			en.WorkspaceID == got[i-1].WorkspaceID && en.Seq <= got[i-1].Seq) {
			t.Errorf("ForPerson(Ivy): entry %d out of (workspace, seq) order", i)
		}
		if en.Target != nil && en.Target.ID == e.ivy.id && en.Target.Email != e.ivy.email {
			t.Errorf("ForPerson(Ivy) %s: target %+v, want opened", en.Action, en.Target)
		}
		// Ivy's export shows nobody else's data: the Admin who acted on
		// her appears by id only, with no address, request or stored forms.
		if en.Actor.ID != e.ivy.id && (en.Actor.Email != "" || en.Actor.Erased || en.Request != nil) {
			t.Errorf("ForPerson(Ivy) %s seq %d: actor %+v, request %+v; want the other party by id only", en.Action, en.Seq, en.Actor, en.Request)
		}
		if en.Sealed != nil {
			t.Errorf("ForPerson(Ivy) %s seq %d: stored forms %+v, want none", en.Action, en.Seq, en.Sealed)
		}
	}
	if seen[e.a] != 5 || seen[e.b] != 5 {
		t.Errorf("ForPerson(Ivy) by workspace: got %v, want 5 in each", seen)
	}
	if got := collect(stranger.id); len(got) != 2 || got[1].Action != "WorkspaceSettingsChanged" {
		t.Errorf("ForPerson(stranger): got %d entries, want the 2 they caused", len(got))
	}

	if err := e.keys.Destroy(ctx, e.ivy.id); err != nil {
		t.Fatal(err)
	}
	for _, en := range collect(e.ivy.id) {
		if en.Target != nil && en.Target.ID == e.ivy.id && (!en.Target.Erased || en.Target.Email != "") {
			t.Errorf("ForPerson(Ivy) after the erasure %s: target %+v, want erased", en.Action, en.Target)
		}
	}

	// The query reads through the indexes on actor and target, never the
	// whole table.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	rows, err := tx.Query(ctx, `EXPLAIN SELECT * FROM audit_entries
		WHERE (actor_id = $1 OR target_id = $1) AND (workspace_id, seq) > ($2, $3) ORDER BY workspace_id, seq LIMIT 1000`,
		e.ivy.id, uuid.Nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		plan.WriteString(line + "\n")
	}
	if p := plan.String(); !strings.Contains(p, "audit_entries_actor_idx") || !strings.Contains(p, "audit_entries_target_idx") {
		t.Errorf("ForPerson's plan does not use both person indexes:\n%s", p)
	}
}

// jsonHas reports whether the details object has key with value want
// (nil: null).
func jsonHas(details json.RawMessage, key string, want any) bool {
	var m map[string]any
	if json.Unmarshal(details, &m) != nil {
		return false
	}
	v, ok := m[key]
	return ok && v == want
}

// TestErasureInEveryBatching: the deletion purges the same addresses
// however the history is cut into batches and replayed, and an address
// learnt after it (the same address re-invited: a new account) stays; the
// chains are those of one batch.
func TestErasureInEveryBatching(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	h := afterFixtures()
	again := person{id: uuid.New(), email: e.ivy.email}
	after := []domain.RecordedEvent{
		h.next(domain.UserInvited{WorkspaceID: e.a, InvitationID: uuid.New(), UserID: again.id, Email: again.email, Role: "Editor",
			InvitedBy: e.olga.id, InviterRole: "Admin", ExpiresAt: t0.AddDate(0, 0, 7)}, by(e.olga.actor())),
	}
	after = append(after, logins(h, e.b, e.olga, 8)...)
	ev := append(e.events, projectionstest.SealAll(t, e.keys, after)...)
	emails := func(schema string) map[uuid.UUID]int {
		rows, err := pool.Query(context.Background(), `SELECT user_id, count(*) FROM `+
			pgx.Identifier{schema, "audit_user_emails"}.Sanitize()+` GROUP BY user_id`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[uuid.UUID]int{}
		var id uuid.UUID
		var n int
		if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	apply(t, pool, ev)
	want := emails("public")
	if w := map[uuid.UUID]int{e.olga.id: 2, again.id: 1}; !reflect.DeepEqual(want, w) {
		t.Fatalf("remembered addresses after one batch: got %v, want %v (none of the deleted account)", want, w)
	}
	wantChain := chain(t, pool, "public")
	for name, b := range projectionstest.Batchings(ev) {
		pgtest.CreateTables(t, pool, name, audit.New().Schema())
		for _, batch := range b {
			applyIn(t, pool, name, batch)
		}
		if got := emails(name); !reflect.DeepEqual(got, want) {
			t.Errorf("batching %s: remembered addresses %v, want %v", name, got, want)
		}
		if got := chain(t, pool, name); !reflect.DeepEqual(got, wantChain) {
			t.Errorf("batching %s: the chains differ from one batch's", name)
		}
	}
}
