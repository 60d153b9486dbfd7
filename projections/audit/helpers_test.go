package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
	"github.com/usersd/usersd/projections/audit"
)

// t0 has nanoseconds on purpose: PostgreSQL keeps microseconds.
var t0 = time.Date(2025, 3, 1, 10, 0, 0, 123456789, time.UTC)

// history hands out recorded events in increasing global order.
type history struct {
	pos uint64
	n   int
}

// fresh is the set-up of a test on the database: it runs t in parallel, on
// a fresh database, with an empty history to record its events.
func fresh(t *testing.T) (*pgxpool.Pool, *history) {
	t.Helper()
	t.Parallel()
	pool, _ := pgtest.New(t)
	return pool, &history{}
}

// afterFixtures is a history whose positions come after those of the
// fixtures' (scenario, newListFixture, newErasure), for events added to
// one of them.
func afterFixtures() *history { return &history{pos: 1 << 20} }

// opt adjusts a recorded event.
type opt func(*domain.RecordedEvent)

func by(a domain.Actor) opt { return func(r *domain.RecordedEvent) { r.Metadata.Actor = a } }

func withRequest(ip, ua string) opt {
	return func(r *domain.RecordedEvent) { r.Metadata.Request = &domain.RequestContext{IP: ip, UserAgent: ua} }
}

func withCorrelation(corr, cause string) opt {
	return func(r *domain.RecordedEvent) { r.Metadata.CorrelationID, r.Metadata.CausationID = corr, cause }
}

func (h *history) next(ev domain.Event, opts ...opt) domain.RecordedEvent {
	h.pos += 3
	h.n++
	r := domain.RecordedEvent{
		Envelope: domain.Envelope{
			Event: ev,
			Metadata: domain.Metadata{
				EventID:       uuid.New(),
				SchemaVersion: domain.SchemaVersion,
				OccurredAt:    t0.Add(time.Duration(h.n) * time.Minute),
				Actor:         domain.Actor{System: true},
			},
		},
		StreamID: "workspace-" + wsOf(ev).String(),
		Revision: uint64(h.n - 1),
		Position: domain.Position{Commit: 1000 + h.pos, Prepare: h.pos},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// wsOf is the workspace of an event (uuid.Nil for none).
func wsOf(ev domain.Event) uuid.UUID {
	ws, _ := domain.WorkspaceOf(ev)
	return ws
}

// apply applies one batch in its own transaction on the live tables.
func apply(t testing.TB, pool *pgxpool.Pool, events []domain.RecordedEvent) {
	t.Helper()
	applyIn(t, pool, "", events)
}

// applyIn applies one batch with the schema first on the search_path, as
// the runner does for a rebuild ("": the live tables).
func applyIn(t testing.TB, pool *pgxpool.Pool, schema string, events []domain.RecordedEvent) {
	t.Helper()
	if err := tryApply(pool, schema, events); err != nil {
		t.Fatalf("Apply: got %v, want no error", err)
	}
}

func tryApply(pool *pgxpool.Pool, schema string, events []domain.RecordedEvent) error {
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if schema != "" {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()+", public"); err != nil {
			return err
		}
	}
	if err := audit.New().Apply(ctx, tx, events); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// chainRow is what the hash chain is made of.
type chainRow struct {
	WorkspaceID uuid.UUID
	Seq         int64
	EventID     uuid.UUID
	PrevHash    string
	Hash        string
}

// chain reads every entry of a schema's audit_entries in (workspace, seq)
// order.
func chain(t testing.TB, pool *pgxpool.Pool, schema string) []chainRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT workspace_id, seq, event_id, prev_hash, hash FROM `+
		pgx.Identifier{schema, "audit_entries"}.Sanitize()+` ORDER BY workspace_id, seq`)
	if err != nil {
		t.Fatalf("read chain: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[chainRow])
	if err != nil {
		t.Fatalf("read chain: %v", err)
	}
	return out
}

// all lists a workspace's entries oldest first, through List.
func all(t testing.TB, pool *pgxpool.Pool, ws uuid.UUID) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	f := audit.Filter{Limit: audit.MaxLimit}
	for {
		page, err := audit.List(context.Background(), pool, plainKeys, ws, f)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func verify(t testing.TB, pool *pgxpool.Pool, ws uuid.UUID) audit.VerifyResult {
	t.Helper()
	res, err := audit.Verify(context.Background(), pool, ws)
	if err != nil {
		t.Fatalf("Verify: got %v, want no error", err)
	}
	return res
}

// wantIntact checks that ws's chain verifies with n entries; when says at
// which point of the test.
func wantIntact(t testing.TB, pool *pgxpool.Pool, ws uuid.UUID, n int, when string) {
	t.Helper()
	if res := verify(t, pool, ws); !res.OK || res.Entries != n {
		t.Errorf("Verify %s: got ok=%v entries=%d broken=%v, want ok with %d entries", when, res.OK, res.Entries, seqOrNil(res.FirstBrokenSeq), n)
	}
}

func seqOrNil(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// person is a user of the scenarios.
type person struct {
	id    uuid.UUID
	email string
}

func newPerson(email string) person { return person{id: uuid.New(), email: email} }

func (p person) actor() domain.Actor { return domain.Actor{UserID: p.id, Email: p.email} }

// logins returns n UserLoggedIn events of p in ws, for volume.
func logins(h *history, ws uuid.UUID, p person, n int) []domain.RecordedEvent {
	out := make([]domain.RecordedEvent, n)
	for i := range out {
		out[i] = h.next(domain.UserLoggedIn{WorkspaceID: ws, UserID: p.id, LoggedInAt: t0.Add(time.Duration(i) * time.Second)},
			by(p.actor()), withRequest("192.0.2.7", "Mozilla/5.0"), withCorrelation("login-"+uuid.NewString(), ""))
	}
	return out
}

// plainKeys opens the histories of tests that build events without sealing
// them: their values are plain, which any keyring answers as they are.
var plainKeys = pii.NewMemoryKeyring()
