package history_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	"github.com/usersd/usersd/adapters/eventstore/memory"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

var t0 = time.Date(2030, 3, 1, 9, 0, 0, 0, time.UTC)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// world runs random commands on an application over a memory store, as
// usersd does, and hands over the events they recorded.
type world struct {
	t      testing.TB
	r      *rand.Rand
	clock  *clock
	app    commands.Application
	store  *memory.Store
	codec  *eventstore.Codec
	ws     uuid.UUID
	admin  uuid.UUID
	tokens map[uuid.UUID]string // pending invitations' links, by person
	people []uuid.UUID          // everyone ever invited, and the owner
}

func newWorld(t testing.TB, seed uint64) *world {
	keys := pii.NewMemoryKeyring()
	codec := eventstore.NewCodec(keys, []byte("the tests' stream-name key, 32 B"))
	store := memory.New()
	c := &clock{now: t0}
	deps := eventstoretest.Deps(store, codec, commands.EphemeralLinkSecrets())
	deps.Clock = c
	policy := commands.DefaultInvitationPolicy()
	// Short links, so that the expiry runs within a sequence.
	policy.TTL = 20 * time.Minute
	w := &world{t: t, r: rand.New(rand.NewPCG(seed, 17)), clock: c, store: store, codec: codec,
		app: commands.NewApplication(deps, policy, commands.Instrumentation{}), tokens: map[uuid.UUID]string{}}
	res, err := w.app.Commands.CreateWorkspace.Handle(context.Background(), commands.CreateWorkspace{
		Name: "Acme", OwnerEmail: "olga@example.com", OwnerName: "Olga Owner", Meta: commands.Meta{Actor: domain.Actor{System: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.ws, w.admin = res.WorkspaceID, res.OwnerUserID
	w.people = append(w.people, w.admin)
	return w
}

var roles = []string{"Admin", "Manager", "Editor", "Monitor", "AgentUser"}

// step runs one random command. Refusals (a removed person, the last
// Admin…) are part of the game: they record nothing.
func (w *world) step() {
	ctx := context.Background()
	w.clock.now = w.clock.now.Add(time.Duration(1+w.r.IntN(5)) * time.Minute)
	as := commands.Meta{Actor: domain.Actor{UserID: w.admin}}
	someone := w.people[w.r.IntN(len(w.people))]
	var err error
	switch n := w.r.IntN(100); {
	case n < 20 || len(w.people) < 3:
		email := fmt.Sprintf("p%03d@example.com", w.r.IntN(40))
		var res commands.InviteUsersResult
		res, err = w.app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: w.ws, Emails: []string{email}, Role: roles[w.r.IntN(len(roles))], Meta: as})
		for _, r := range res.Results {
			if r.Token != "" {
				w.tokens[r.UserID] = r.Token
				w.people = append(w.people, r.UserID)
			}
		}
	case n < 40:
		if tok, ok := w.tokens[someone]; ok {
			_, err = w.app.Commands.AcceptInvitation.Handle(ctx, commands.AcceptInvitation{Token: tok, Name: fmt.Sprintf("Person %d", w.r.IntN(30)), Meta: commands.Meta{Actor: domain.Actor{UserID: someone}}})
			if err == nil {
				delete(w.tokens, someone)
			}
		}
	case n < 44:
		_, err = w.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: w.ws, UserID: someone, Role: roles[w.r.IntN(len(roles))], Meta: as})
	case n < 52:
		// A temporary role, which the expiry below ends, or keeps for the
		// last Admin: an Admin for a while, then the owner's own grant of
		// another role for longer, make that case.
		role := roles[w.r.IntN(len(roles))]
		if w.r.IntN(2) == 0 {
			role = "Admin"
		}
		until := w.clock.now.Add(time.Duration(1+w.r.IntN(30)) * time.Minute)
		if w.r.IntN(3) == 0 {
			someone, role, until = w.admin, roles[1+w.r.IntN(len(roles)-1)], until.Add(30*time.Minute)
		}
		_, err = w.app.Commands.ChangeRole.Handle(ctx, commands.ChangeRole{WorkspaceID: w.ws, UserID: someone, Role: role, Until: until, Meta: as})
	case n < 60:
		_, err = w.app.Commands.SuspendUser.Handle(ctx, commands.SuspendUser{WorkspaceID: w.ws, UserID: someone, Meta: as})
	case n < 66:
		_, err = w.app.Commands.ReactivateUser.Handle(ctx, commands.ReactivateUser{WorkspaceID: w.ws, UserID: someone, Meta: as})
	case n < 72:
		_, err = w.app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: w.ws, UserID: someone, Meta: as})
	case n < 78:
		var res commands.ResendInvitationResult
		res, err = w.app.Commands.ResendInvitation.Handle(ctx, commands.ResendInvitation{WorkspaceID: w.ws, UserID: someone, Meta: as})
		if err == nil {
			w.tokens[someone] = res.Token
		}
	case n < 84:
		w.clock.now = w.clock.now.Add(time.Duration(w.r.IntN(25)) * time.Minute)
		_, err = w.app.Commands.ExpireInvitations.Handle(ctx, commands.ExpireInvitations{WorkspaceID: w.ws, Meta: commands.Meta{Actor: domain.Actor{System: true}}})
	case n < 92:
		_, err = w.app.Commands.RecordLogin.Handle(ctx, commands.RecordLogin{WorkspaceID: w.ws, UserID: someone, Meta: commands.Meta{Actor: domain.Actor{UserID: someone}}})
	default:
		// The mailer's outcome of a pending invitation's current attempt.
		var inv commands.InvitationView
		if tok, ok := w.tokens[someone]; ok {
			inv, err = w.app.Queries.LookupInvitation.Handle(ctx, commands.LookupInvitation{Token: tok})
			if err == nil {
				failure := ""
				if w.r.IntN(2) == 0 {
					failure = "mailbox unavailable"
				}
				_, err = w.app.Commands.RecordEmailOutcomes.Handle(ctx, commands.RecordEmailOutcomes{WorkspaceID: w.ws,
					Outcomes: []commands.EmailOutcome{{InvitationID: inv.Invitation.ID, Attempt: inv.Invitation.Attempt, Failure: failure}},
					Meta:     commands.Meta{Actor: domain.Actor{System: true}}})
			}
		}
	}
	if err != nil && domain.ErrorCode(err) == "" {
		w.t.Fatalf("command: %v", err)
	}
}

// events answers every event recorded so far, as projections get them.
func (w *world) events() []domain.RecordedEvent {
	var out []domain.RecordedEvent
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := eventstore.Source{Store: w.store, Codec: w.codec}.Subscribe(ctx, domain.Position{}, 500, func(_ context.Context, b projections.Batch) error {
		out = append(out, b.Events...)
		if b.CaughtUp {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		w.t.Fatal(err)
	}
	return out
}

// inSchema runs f in a transaction whose search path is schema.
func inSchema(t testing.TB, pool *pgxpool.Pool, schema string, f func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()+", public"); err != nil {
			return err
		}
		f(tx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// all reads every page of a list with limit rows a page.
func all(t testing.TB, page func(cursor string) (userlist.Page, error)) []userlist.Row {
	t.Helper()
	var rows []userlist.Row
	cursor := ""
	for {
		p, err := page(cursor)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, p.Items...)
		if p.NextCursor == "" {
			return rows
		}
		cursor = p.NextCursor
	}
}

// TestAsOfMatchesReplay is the property of issue 17: for random command
// sequences, the list as of every position (and as of the instant of every
// event) is, row for row, the current user list of a replay of the events
// up to that position; with the filters and paging of the list too.
func TestAsOfMatchesReplay(t *testing.T) {
	t.Parallel()
	const cases, steps = 12, 60
	pool, _ := pgtest.New(t)
	// The sequences must grant temporary roles and end them both ways, or
	// the property says nothing about them.
	seen := map[string]int{}
	defer func() {
		t.Logf("temporary roles: %v", seen)
		for _, k := range []string{"RoleChanged until", "RoleGrantExpired", "RoleGrantExpiryRefused"} {
			if seen[k] == 0 && !t.Failed() {
				t.Errorf("no %s in %d sequences: the random commands no longer cover temporary roles", k, cases)
			}
		}
	}()
	for c := range cases {
		w, events := randomHistory(t, uint64(c), steps, 0)
		for _, ev := range events {
			switch e := ev.Event.(type) {
			case domain.RoleChanged:
				if e.Until != nil {
					seen["RoleChanged until"]++
				}
			case domain.RoleGrantExpired, domain.RoleGrantExpiryRefused:
				seen[domain.EventName(e)]++
			}
		}
		// The history gets the events in random batches, as a runner would.
		for i := 0; i < len(events); {
			n := 1 + w.r.IntN(40)
			pgtest.Apply(t, pool, "public", history.New(), events[i:min(i+n, len(events))])
			i += n
		}
		replay := fmt.Sprintf("replay_%d", c)
		pgtest.CreateTables(t, pool, replay, userlist.New().Schema())
		for i, ev := range events {
			pgtest.Apply(t, pool, replay, userlist.New(), events[i:i+1])
			if _, ok := domain.WorkspaceOf(ev.Event); !ok {
				continue
			}
			filters := []userlist.Filter{{Limit: userlist.MaxLimit}}
			if i%5 == 0 {
				filters = append(filters,
					userlist.Filter{Limit: 2},
					userlist.Filter{Status: roles4status[i%3], Limit: 3},
					userlist.Filter{Role: roles[i%len(roles)], Limit: 1},
					userlist.Filter{Q: "person", Limit: 2},
					userlist.Filter{Q: "EXAMPLE.com", Status: "active"})
			}
			for _, f := range filters {
				var want, byPos, byTime []userlist.Row
				inSchema(t, pool, replay, func(tx pgx.Tx) {
					// The zero clock: only recorded expiries count, as
					// as of a position.
					q := userlist.NewQueries(tx, func() time.Time { return time.Time{} })
					want = all(t, func(cur string) (userlist.Page, error) { f.Cursor = cur; return q.List(context.Background(), w.ws, f) })
				})
				h := history.NewQueries(pool)
				byPos = all(t, func(cur string) (userlist.Page, error) {
					f.Cursor = cur
					return h.List(context.Background(), w.ws, history.AsOf{Position: ev.Position}, f)
				})
				if !reflect.DeepEqual(byPos, want) {
					t.Fatalf("case %d, event %d (%s at %s), filter %+v: as of the position\n got %s\nwant %s",
						c, i, domain.EventName(ev.Event), ev.Position, f, show(byPos), show(want))
				}
				// As of an instant: the events of one instant all count,
				// and so does the clock for expiry.
				if i+1 < len(events) && events[i+1].Metadata.OccurredAt.Equal(ev.Metadata.OccurredAt) {
					continue
				}
				at := ev.Metadata.OccurredAt
				inSchema(t, pool, replay, func(tx pgx.Tx) {
					q := userlist.NewQueries(tx, func() time.Time { return at })
					want = all(t, func(cur string) (userlist.Page, error) { f.Cursor = cur; return q.List(context.Background(), w.ws, f) })
				})
				byTime = all(t, func(cur string) (userlist.Page, error) {
					f.Cursor = cur
					return h.List(context.Background(), w.ws, history.AsOf{Time: at}, f)
				})
				if !reflect.DeepEqual(byTime, want) {
					t.Fatalf("case %d, event %d (%s at %s), filter %+v: as of the instant %s\n got %s\nwant %s",
						c, i, domain.EventName(ev.Event), ev.Position, f, at, show(byTime), show(want))
				}
			}
		}
	}
}

var roles4status = []string{"active", "invited", "suspended"}

func show(rows []userlist.Row) string {
	s := ""
	for _, r := range rows {
		s += fmt.Sprintf("\n  %s %q %s %s login=%v until=%v", r.UserID, r.DisplayName, r.Role, r.Status, r.LastLoginAt, r.RoleUntil)
		if r.Invitation != nil {
			s += fmt.Sprintf(" inv=%+v", *r.Invitation)
		}
	}
	return s
}
