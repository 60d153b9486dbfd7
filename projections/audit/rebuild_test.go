package audit_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/projectionstest"
)

// TestRebuild: a rebuild of the audit history keeps the read models'
// rebuild contract (pgtest.CheckRebuild) over a history applied event by
// event, so the chain comes out identical to the one built event by event
// (the rows compare equal, hashes included); the append-only triggers are
// there all along, and the rebuilt history verifies.
func TestRebuild(t *testing.T) {
	pool, h := fresh(t)
	a, _, events := scenario(h)
	pgtest.CheckRebuild(t, pool, audit.New(), events, pgtest.RebuildCheck{
		LiveBatch: 1, RebuildBatch: 3,
		During: func(ph projections.RebuildPhase, schema string) {
			checkTriggers(t, pool, schema)
			if ph == projections.RebuildSwap {
				checkRefusals(t, pool, schema, a)
			}
		},
	})
	checkTriggers(t, pool, "public")
	checkRefusals(t, pool, "public", a)
	if res := verify(t, pool, a); !res.OK || res.Entries != 6 {
		t.Errorf("Verify after the rebuild: got %+v, want ok with 6 entries", res)
	}
}

// BenchmarkRebuild measures the whole rebuild of b.N events as the runner
// package does it (its default batch size, asynchronous commits, the filter
// indexes built after the replay, the swap). For the 1,000,000-event
// figure: -bench Rebuild -benchtime 1000000x
func BenchmarkRebuild(b *testing.B) {
	pool, _ := pgtest.New(b)
	projectionstest.Rebuild(b, pool, audit.New(), benchEvents(b.N, 1000))
}

// TestRebuildPurgesInMemory: the rebuild keeps the remembered addresses
// in memory (projections.Replayer), so an account's deletion must forget
// them there, in every workspace, as Apply's DELETE does: a later event
// that carries no address then names no one, and the rebuilt chain and
// audit_user_emails equal the live ones.
func TestRebuildPurgesInMemory(t *testing.T) {
	pool, _ := fresh(t)
	e := newErasure(t)
	last := e.events[len(e.events)-1]
	h := history{pos: last.Position.Prepare, n: len(e.events)}
	events := append(e.events, h.next(domain.InvitationEmailFailed{WorkspaceID: e.b, InvitationID: uuid.New(), UserID: e.ivy.id, Attempt: 2, Reason: "late"}))
	pgtest.CheckRebuild(t, pool, audit.New(), events, pgtest.RebuildCheck{LiveBatch: 1, RebuildBatch: 4})
	var named, kept int
	if err := pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM audit_entries WHERE action = 'InvitationEmailFailed' AND target_id = $1 AND target_email IS NOT NULL AND seq > 5),
			(SELECT count(*) FROM audit_user_emails WHERE user_id = $1)`, e.ivy.id).Scan(&named, &kept); err != nil || named != 0 || kept != 0 {
		t.Errorf("after the rebuild: %d late entries name Ivy, %d addresses of hers kept (%v); want none", named, kept, err)
	}
}
