package userlist_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/userlist"
)

// t0 is when every test history starts.
var t0 = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)

// history records events as a store would: increasing positions, one minute
// apart, each workspace's events on its own stream.
type history struct {
	events    []domain.RecordedEvent
	revisions map[string]uint64
}

// add records events and returns them as recorded.
func (h *history) add(events ...domain.Event) []domain.RecordedEvent {
	start := len(h.events)
	for _, e := range events {
		n := uint64(len(h.events) + 1)
		stream := "other"
		if ws, ok := domain.WorkspaceOf(e); ok {
			stream = "workspace-" + ws.String()
		}
		rev := h.revisions[stream]
		h.revisions[stream] = rev + 1
		h.events = append(h.events, domain.RecordedEvent{
			Envelope: domain.Envelope{Event: e, Metadata: domain.Metadata{
				EventID: uuid.New(), SchemaVersion: domain.SchemaVersion,
				OccurredAt: t0.Add(time.Duration(n) * time.Minute),
			}},
			StreamID: stream,
			Revision: rev,
			Position: domain.Position{Commit: 1000 + n, Prepare: n},
		})
	}
	return h.events[start:]
}

// at is the time of the event the history records next.
func (h *history) at() time.Time { return t0.Add(time.Duration(len(h.events)+1) * time.Minute) }

// world builds the events of a few people in workspaces.
type world struct {
	h *history
}

// newWorld answers a new history and a world that records into it.
func newWorld() (*history, world) {
	h := &history{revisions: map[string]uint64{}}
	return h, world{h}
}

func (w world) create(ws, owner uuid.UUID, email, name, wsName string) {
	w.h.add(domain.WorkspaceCreated{WorkspaceID: ws, Name: wsName, OwnerUserID: owner, OwnerEmail: email, OwnerName: name, CreatedAt: w.h.at()})
}

// invite invites a person and answers the invitation id.
func (w world) invite(ws, by, user uuid.UUID, email string, role domain.Role) uuid.UUID {
	inv := uuid.New()
	at := w.h.at()
	w.h.add(domain.UserInvited{
		WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email, Role: string(role),
		InvitedBy: by, InviterRole: "Admin", TokenHash: "h", InvitedAt: at, ExpiresAt: at.Add(7 * 24 * time.Hour),
	})
	return inv
}

func (w world) accept(ws, inv, user uuid.UUID, email, name string, role domain.Role) {
	w.h.add(domain.InvitationAccepted{WorkspaceID: ws, InvitationID: inv, UserID: user, Email: email, Name: name, Role: string(role), AcceptedAt: w.h.at()})
}

// join invites and accepts.
func (w world) join(ws, by, user uuid.UUID, email, name string, role domain.Role) {
	w.accept(ws, w.invite(ws, by, user, email, role), user, email, name, role)
}

// apply applies each batch in a transaction of its own, with schema first
// on the search path.
func apply(t testing.TB, pool *pgxpool.Pool, schema string, batches ...[]domain.RecordedEvent) {
	t.Helper()
	pgtest.Apply(t, pool, schema, userlist.New(), batches...)
}

// fixedClock answers now for the queries.
func fixedClock(now time.Time) func() time.Time { return func() time.Time { return now } }

func ptr[T any](v T) *T { return &v }

// describe renders a row for failure messages.
func describe(r userlist.Row) string {
	s := fmt.Sprintf("{user %s name %v display %q email %q role %s status %s lastLogin %v", r.UserID, deref(r.Name), r.DisplayName, r.Email, r.Role, r.Status, derefTime(r.LastLoginAt))
	s += fmt.Sprintf(" roleUntil %v", derefTime(r.RoleUntil))
	if inv := r.Invitation; inv != nil {
		s += fmt.Sprintf(" invitation{id %s invitedAt %v by %s expiresAt %v expired %v attempt %d email %s}",
			inv.ID, inv.InvitedAt.UTC(), inv.InvitedBy, inv.ExpiresAt.UTC(), inv.Expired, inv.Attempt, inv.EmailStatus)
	}
	return s + "}"
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func derefTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}
