package history_test

import (
	"context"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/migrations"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

// run runs n random steps: one time in reviewEvery (never if it is 0) a
// review step, a random command otherwise.
func (w *world) run(n, reviewEvery int) {
	var open []uuid.UUID
	for range n {
		if reviewEvery > 0 && w.r.IntN(reviewEvery) == 0 {
			w.reviewStep(&open)
		} else {
			w.step()
		}
	}
}

// randomHistory is a world of seed after n random steps (run), with the
// events they recorded.
func randomHistory(t testing.TB, seed uint64, n, reviewEvery int) (*world, []domain.RecordedEvent) {
	w := newWorld(t, seed)
	w.run(n, reviewEvery)
	return w, w.events()
}

// reviewStep starts a review, decides an item of an open one (any
// decision, on anyone: refusals are part of the game), or completes one
// after keeping its undecided items.
func (w *world) reviewStep(open *[]uuid.UUID) {
	ctx := context.Background()
	w.clock.now = w.clock.now.Add(time.Minute)
	as := commands.Meta{Actor: domain.Actor{UserID: w.admin}}
	c := w.app.Commands
	if len(*open) == 0 || w.r.IntN(3) == 0 {
		res, err := c.StartAccessReview.Handle(ctx, commands.StartAccessReview{WorkspaceID: w.ws, Name: "Review", Meta: as})
		if err == nil {
			*open = append(*open, res.ReviewID)
		} else if domain.ErrorCode(err) == "" {
			w.t.Fatal(err)
		}
		return
	}
	i := w.r.IntN(len(*open))
	id := (*open)[i]
	decide := func(user uuid.UUID, d, role string) error {
		_, err := c.DecideAccessReviewItem.Handle(ctx, commands.DecideAccessReviewItem{
			WorkspaceID: w.ws, ReviewID: id, UserID: user, Decision: d, Role: role, Comment: "seen", Meta: as})
		if err != nil && domain.ErrorCode(err) == "" {
			w.t.Fatal(err)
		}
		return err
	}
	if w.r.IntN(4) > 0 {
		d := []string{"keep", "change_role", "revoke"}[w.r.IntN(3)]
		role := ""
		if d == "change_role" {
			role = roles[w.r.IntN(len(roles))]
		}
		_ = decide(w.people[w.r.IntN(len(w.people))], d, role)
		return
	}
	for _, p := range w.people {
		_ = decide(p, "keep", "")
	}
	if _, err := c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: w.ws, ReviewID: id, Meta: as}); err != nil {
		w.t.Fatal(err)
	}
	*open = append((*open)[:i], (*open)[i+1:]...)
}

// TestReviewsMatchTheListAsOfTheirStart is the property of the reviews'
// materialisation: over random sequences with reviews started among them,
// each review's items are the people of the list as of its start (what
// the aggregate froze: as many as the start event says), each with the
// role, status, address, name and last login the list showed then.
func TestReviewsMatchTheListAsOfTheirStart(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	reviews := 0
	for c := range 6 {
		w, events := randomHistory(t, uint64(100+c), 80, 8)
		for i := 0; i < len(events); {
			n := 1 + w.r.IntN(30)
			pgtest.Apply(t, pool, "public", history.New(), events[i:min(i+n, len(events))])
			i += n
		}
		h := history.NewQueries(pool)
		for _, ev := range events {
			start, ok := ev.Event.(domain.AccessReviewStarted)
			if !ok {
				continue
			}
			reviews++
			r, err := h.Review(ctx, w.ws, start.ReviewID)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Items) != start.Items || r.AsOfPosition != ev.Position.String() {
				t.Fatalf("case %d: review %s holds %d items as of %s, want %d (the start event's) as of %s",
					c, start.ReviewID, len(r.Items), r.AsOfPosition, start.Items, ev.Position)
			}
			list := all(t, func(cur string) (userlist.Page, error) {
				return h.List(ctx, w.ws, history.AsOf{Position: ev.Position}, userlist.Filter{Limit: userlist.MaxLimit, Cursor: cur})
			})
			got, want := make([]string, len(r.Items)), make([]string, len(list))
			for i, it := range r.Items {
				got[i] = fmt.Sprint(it.UserID, *it.DisplayName, *it.Email, it.Role, it.StatusAtStart, it.LastLoginAt)
			}
			for i, row := range list {
				want[i] = fmt.Sprint(row.UserID, row.DisplayName, row.Email, row.Role, row.Status, row.LastLoginAt)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("case %d: review %s\n got %v\nwant %v", c, start.ReviewID, got, want)
			}
		}
	}
	if reviews < 6 {
		t.Fatalf("%d reviews started in the sequences, want several", reviews)
	}
}

// TestRebuildWithReviews: the rebuild contract holds for the reviews'
// tables too.
func TestRebuildWithReviews(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	_, events := randomHistory(t, 7, 300, 6)
	seen := map[string]int{}
	for _, ev := range events {
		seen[domain.EventName(ev.Event)]++
	}
	if seen["AccessReviewStarted"] == 0 || seen["AccessReviewItemDecided"] == 0 || seen["AccessReviewCompleted"] == 0 {
		t.Fatalf("the sequence has %v, want every review event", seen)
	}
	pgtest.CheckRebuild(t, pool, history.New(), events, pgtest.RebuildCheck{LiveBatch: 23, RebuildBatch: 71})
}

// TestReview: one review through its life: who granted each role and when,
// dormancy, decisions, a member removed meanwhile (removed, beside the role
// frozen at the start), one who joined after the start (absent), the
// completion (status frozen as of it), and an erasure (the person shows by
// id, erased, in items and as a decider).
func TestReview(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	w := newWorld(t, 1)
	c := w.app.Commands
	as := func(u uuid.UUID) commands.Meta { return commands.Meta{Actor: domain.Actor{UserID: u}} }
	admin := w.admin
	invite := func(email, role string) (uuid.UUID, string) {
		res, err := c.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: w.ws, Emails: []string{email}, Role: role, Meta: as(admin)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Results[0].UserID, res.Results[0].Token
	}
	join := func(email, role, name string) uuid.UUID {
		id, tok := invite(email, role)
		w.clock.now = w.clock.now.Add(time.Minute)
		if _, err := c.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: tok, Name: name, Meta: as(id)}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ann := join("ann@example.com", "Editor", "Ann")
	bob := join("bob@example.com", "Editor", "Bob")
	cy := join("cy@example.com", "Monitor", "Cy")
	w.clock.now = w.clock.now.Add(24 * time.Hour)
	grantedAt := w.clock.now
	must(c.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: w.ws, UserID: ann, Role: "Admin", Meta: as(admin)}))
	w.clock.now = w.clock.now.Add(100 * 24 * time.Hour)
	must(c.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: w.ws, UserID: bob, Meta: as(bob)}))
	dan, _ := invite("dan@example.com", "Monitor")
	w.clock.now = w.clock.now.Add(time.Hour)
	rev, err := c.StartAccessReview.Handle(ctx, commands.StartAccessReview{WorkspaceID: w.ws, Name: "Q1", Meta: as(ann)})
	if err != nil {
		t.Fatal(err)
	}
	late := join("late@example.com", "Editor", "Late")
	must(c.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: w.ws, UserID: cy, Meta: as(admin)}))
	decide := func(user uuid.UUID, d, role, comment string) {
		t.Helper()
		must(c.DecideAccessReviewItem.Handle(ctx, commands.DecideAccessReviewItem{
			WorkspaceID: w.ws, ReviewID: rev.ReviewID, UserID: user, Decision: d, Role: role, Comment: comment, Meta: as(ann)}))
	}
	decide(admin, "keep", "", "")
	decide(ann, "keep", "", "ann runs billing")
	decide(bob, "change_role", "Monitor", "")
	decide(cy, "keep", "", "")
	events := w.events()
	pgtest.Apply(t, pool, "public", history.New(), events)
	h := history.NewQueries(pool)

	r, err := h.Review(ctx, w.ws, rev.ReviewID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != history.ReviewOpen || r.Decided != 4 || r.Name != "Q1" || r.StartedBy == nil || r.StartedBy.UserID != ann || *r.StartedBy.Name != "Ann" {
		t.Errorf("review: %+v, want open, 4 decided, started by Ann", r)
	}
	items := map[uuid.UUID]history.ReviewItem{}
	for _, it := range r.Items {
		items[it.UserID] = it
	}
	if _, in := items[late]; in || len(items) != 5 {
		t.Errorf("items: %d, with the late joiner %v; want the 5 people of the start, not the late joiner", len(items), in)
	}
	a := items[ann]
	if a.Role != "Admin" || a.GrantedBy == nil || a.GrantedBy.UserID != admin || a.GrantedAt == nil || !a.GrantedAt.Equal(grantedAt) {
		t.Errorf("Ann: role %s granted by %+v at %v, want Admin granted by the owner at %v", a.Role, a.GrantedBy, a.GrantedAt, grantedAt)
	}
	if !a.Dormant || a.Decision == nil || *a.Decision != "keep" || a.Comment == nil || *a.Comment != "ann runs billing" || a.DecidedBy.UserID != ann {
		t.Errorf("Ann: %+v, want dormant (no login), kept by herself with her comment", a)
	}
	b := items[bob]
	if b.Dormant || b.LastLoginAt == nil || b.Role != "Editor" || b.GrantedBy == nil || b.GrantedBy.UserID != admin ||
		*b.Decision != "change_role" || b.NewRole == nil || *b.NewRole != "Monitor" || b.Status != "active" {
		t.Errorf("Bob: %+v, want not dormant, Editor granted by the owner's invitation, changed to Monitor", b)
	}
	if cyi := items[cy]; cyi.Status != history.StatusRemoved || cyi.Role != "Monitor" || cyi.StatusAtStart != "active" {
		t.Errorf("Cy: %+v, want removed now, Monitor and active at the start", cyi)
	}
	if d := items[dan]; d.Status != "invited" || d.StatusAtStart != "invited" || d.Decision != nil || !d.Dormant {
		t.Errorf("Dan: %+v, want a pending invitation, undecided, dormant (never logged in)", d)
	}
	list, err := h.Reviews(ctx, w.ws)
	if err != nil || len(list) != 1 || list[0].Items != 5 || list[0].Decided != 4 || list[0].Status != history.ReviewOpen {
		t.Fatalf("Reviews: %+v, %v; want the one open review, 5 items, 4 decided", list, err)
	}

	// Dan is revoked, which completes the decisions; the review completes.
	decide(dan, "revoke", "", "")
	must(c.CompleteAccessReview.Handle(ctx, commands.CompleteAccessReview{WorkspaceID: w.ws, ReviewID: rev.ReviewID, Meta: as(admin)}))
	// After the completion, Bob is suspended: the completed review keeps
	// his status as of its completion.
	must(c.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: w.ws, UserID: bob, Meta: as(admin)}))
	more := w.events()[len(events):]
	pgtest.Apply(t, pool, "public", history.New(), more)
	r, err = h.Review(ctx, w.ws, rev.ReviewID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != history.ReviewCompleted || r.Decided != 5 || r.CompletedBy == nil || r.CompletedBy.UserID != admin || r.CompletedPosition.IsZero() || r.CompletedEventID == uuid.Nil {
		t.Errorf("review: %+v, want completed by the owner, with its position and event", r)
	}
	for _, it := range r.Items {
		if it.UserID == bob && it.Status != "active" {
			t.Errorf("Bob after the completion: %s, want active (as of the completion)", it.Status)
		}
		if it.UserID == dan && it.Status != history.StatusRemoved {
			t.Errorf("Dan after his revocation: %s, want removed", it.Status)
		}
	}

	// Ann's account is deleted: she shows by id, erased, as an item and as
	// the one who started the review and decided.
	erase := w.events()
	del := erase[len(erase)-1]
	del.Event, del.Position = domain.AccountDeleted{UserID: ann, DeletedAt: w.clock.now}, domain.Position{Commit: del.Position.Commit + 100, Prepare: del.Position.Prepare + 100}
	del.Metadata.EventID = uuid.New()
	pgtest.Apply(t, pool, "public", history.New(), []domain.RecordedEvent{del})
	r, err = h.Review(ctx, w.ws, rev.ReviewID)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range r.Items {
		if it.UserID == ann && (!it.Erased || it.Email != nil || it.DisplayName != nil || it.Comment != nil) {
			t.Errorf("Ann's item after her erasure: %+v, want erased, no address, name or comment", it)
		}
		if it.DecidedBy != nil && it.DecidedBy.UserID == ann && (!it.DecidedBy.Erased || it.DecidedBy.Email != nil) {
			t.Errorf("Ann as a decider after her erasure: %+v, want erased", it.DecidedBy)
		}
	}
	if !r.StartedBy.Erased || r.StartedBy.Email != nil || r.StartedBy.Name != nil {
		t.Errorf("Ann as the starter after her erasure: %+v, want erased", r.StartedBy)
	}
	if _, err := h.Review(ctx, w.ws, uuid.New()); domain.ErrorCode(err) != domain.CodeReviewNotFound {
		t.Errorf("an unknown review: %v, want review_not_found", err)
	}
	var n int
	inSchema(t, pool, "public", func(tx pgx.Tx) {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM access_review_items WHERE comment IS NOT NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%d comments left after the erasure, want 0 (only Ann's was written)", n)
	}
}

// TestGrantsBackfillMatchesTheProjection: migration 00015 fills in who set
// the role of the intervals already there; its rule gives the very grants
// the projection records as it applies the events.
func TestGrantsBackfillMatchesTheProjection(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := context.Background()
	raw, err := fs.ReadFile(migrations.FS, "00015_access_reviews.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	from := strings.Index(text, "UPDATE membership_intervals m")
	if from < 0 || !strings.Contains(text[from:], ";") {
		t.Fatal("00015 has no backfill of the grants")
	}
	backfill := text[from : from+strings.Index(text[from:], ";")]
	for c := range 4 {
		_, events := randomHistory(t, uint64(200+c), 120, 0)
		pgtest.Apply(t, pool, "public", history.New(), events)
	}
	const grants = `SELECT coalesce(string_agg(concat_ws(' ', user_id, valid_from_commit, valid_from_prepare, granted_by, granted_at), E'\n'
		ORDER BY workspace_id, user_id, valid_from_commit, valid_from_prepare), '') FROM membership_intervals`
	var want, got string
	var missing int
	if err := pool.QueryRow(ctx, grants).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM membership_intervals WHERE granted_at IS NULL`).Scan(&missing); err != nil || missing > 0 {
		t.Fatalf("%d intervals without a grant's time (%v), want none", missing, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE membership_intervals SET granted_by = NULL, granted_at = NULL`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, backfill); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, grants).Scan(&got); err != nil {
		t.Fatal(err)
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			t.Fatalf("interval %d: the backfill grants %q, the projection %q", i, g[i], w[i])
		}
	}
	if len(g) != len(w) {
		t.Errorf("the backfill gives %d intervals, the projection %d", len(g), len(w))
	}
}

// TestRebuildDeletesAnAccountInMemory: the rebuild keeps the open
// intervals in memory and writes the closed ones as it goes, so an
// account's deletion meets both: intervals written by earlier batches
// (blanked by UPDATE), open ones (closed at the deletion), and items of
// reviews started before it (blanked). Batches of 5 put them on every
// side of a boundary; the live tables are applied one event at a time.
func TestRebuildDeletesAnAccountInMemory(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	_, events := randomHistory(t, 13, 200, 6)
	// The person with the most events: intervals closed and open, and
	// in the reviews.
	count := map[uuid.UUID]int{}
	var gone uuid.UUID
	for _, ev := range events {
		if _, user, ok := projections.PersonOf(ev.Event); ok {
			if count[user]++; count[user] > count[gone] {
				gone = user
			}
		}
	}
	events = append(events, stamp(events, domain.AccountDeleted{UserID: gone, DeletedAt: t0})...)
	pgtest.CheckRebuild(t, pool, history.New(), events, pgtest.RebuildCheck{LiveBatch: 1, RebuildBatch: 5})
	var kept, open2, items int
	if err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FILTER (WHERE email <> '' OR name IS NOT NULL) FROM membership_intervals WHERE user_id = $1),
			(SELECT count(*) FILTER (WHERE valid_to_commit IS NULL) FROM membership_intervals WHERE user_id = $1),
			(SELECT count(*) FROM access_review_items WHERE user_id = $1)`, gone).Scan(&kept, &open2, &items); err != nil {
		t.Fatal(err)
	}
	if kept != 0 || open2 != 0 || items == 0 {
		t.Errorf("after the rebuild: %d intervals keep an address or name, %d open, %d review items; want 0, 0 and some", kept, open2, items)
	}
}
