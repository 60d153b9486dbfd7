package memberships_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/memberships"
)

var t0 = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)

// history records events as a store would, at increasing positions.
type history struct{ events []domain.RecordedEvent }

func (h *history) add(events ...domain.Event) {
	for _, e := range events {
		n := uint64(len(h.events) + 1)
		h.events = append(h.events, domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{
				EventID: uuid.New(), SchemaVersion: domain.SchemaVersion,
				OccurredAt: t0.Add(time.Duration(n) * time.Minute),
			}},
			StreamID: "test",
			Revision: n - 1,
			Position: domain.Position{Commit: 5000 + n, Prepare: n},
		})
	}
}

func (h *history) create(ws, owner uuid.UUID, name string) {
	h.add(domain.WorkspaceCreated{WorkspaceID: ws, Name: name, OwnerUserID: owner, OwnerEmail: owner.String() + "@example.com", OwnerName: "Owner", CreatedAt: t0})
}

func (h *history) invite(ws, user uuid.UUID, role domain.Role) uuid.UUID {
	inv := uuid.New()
	h.add(domain.UserInvited{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: user.String() + "@example.com", Role: string(role), InviterRole: "Admin", InvitedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	return inv
}

func (h *history) accept(ws, inv, user uuid.UUID, role domain.Role) {
	h.add(domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: user.String() + "@example.com", Name: "Person", Role: string(role), AcceptedAt: t0})
}

func (h *history) join(ws, user uuid.UUID, role domain.Role) {
	h.accept(ws, h.invite(ws, user, role), user, role)
}

// apply applies each batch in a transaction of its own, with schema first
// on the search path.
func apply(t testing.TB, pool *pgxpool.Pool, schema string, batches ...[]domain.RecordedEvent) {
	t.Helper()
	pgtest.Apply(t, pool, schema, memberships.New(), batches...)
}

// createSchema makes fresh tables in a new schema with the projection's
// own SQL.
func createSchema(t testing.TB, pool *pgxpool.Pool, schema string) {
	t.Helper()
	pgtest.CreateTables(t, pool, schema, memberships.New().Schema())
}

// queries runs f with queries that read schema.
func queries(t testing.TB, pool *pgxpool.Pool, schema string, f func(q *memberships.Queries)) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		f(memberships.NewQueries(tx))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
