package projections

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Events is a set of event types, named by example values
// (EventsOf(domain.UserInvited{}, ...)).
type Events struct{ types map[reflect.Type]struct{} }

// EventsOf returns the set of the examples' types.
func EventsOf(examples ...domain.Event) Events {
	s := Events{types: make(map[reflect.Type]struct{}, len(examples))}
	for _, e := range examples {
		s.types[reflect.TypeOf(e)] = struct{}{}
	}
	return s
}

// Has reports whether e's type is in the set.
func (s Events) Has(e domain.Event) bool {
	_, ok := s.types[reflect.TypeOf(e)]
	return ok
}

// Handling is what a read model declares about every event type: the ones
// it applies, and the ones it ignores on purpose. Each registered type is in
// exactly one of the two (Check), so that a new event type cannot be
// forgotten silently: TestEveryEventIsHandled fails, naming it and the read
// models that do not declare it.
type Handling struct {
	Applies Events
	Ignores Events
}

// ApplyAllBut declares a read model that applies every registered event
// type but the ignored ones. A new event type is then applied: the read
// model's test that its switch has a case for every type it applies
// (Uncovered) names it, until it gets a case or joins the ignored.
func ApplyAllBut(ignored ...domain.Event) Handling {
	h := Handling{Ignores: EventsOf(ignored...)}
	var applies []domain.Event
	for _, t := range domain.EventTypes() {
		if !h.Ignores.Has(t.Zero()) {
			applies = append(applies, t.Zero())
		}
	}
	h.Applies = EventsOf(applies...)
	return h
}

// Check reports the registered event types that h neither applies nor
// ignores, or declares both ways, by name; nil when every type is declared
// once.
func (h Handling) Check() error {
	var missing, twice []string
	for _, t := range domain.EventTypes() {
		applies, ignores := h.Applies.Has(t.Zero()), h.Ignores.Has(t.Zero())
		switch {
		case applies && ignores:
			twice = append(twice, t.Name)
		case !applies && !ignores:
			missing = append(missing, t.Name)
		}
	}
	var msgs []string
	if len(missing) > 0 {
		msgs = append(msgs, "neither applies nor ignores "+strings.Join(missing, ", "))
	}
	if len(twice) > 0 {
		msgs = append(msgs, "both applies and ignores "+strings.Join(twice, ", "))
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// Applied answers whether the projection applies e: true for a type it
// applies, false for one it ignores, and an error for a type it does not
// declare (never a registered type once Check passes).
func (h Handling) Applied(e domain.Event) (bool, error) {
	switch {
	case h.Applies.Has(e):
		return true, nil
	case h.Ignores.Has(e):
		return false, nil
	}
	return false, fmt.Errorf("event type %s (%T) is not declared by the projection", domain.EventName(e), e)
}

// Uncovered lists, by name, the registered types h applies for which
// hasCase answers false: a projection's test hands it the switch that
// applies events, called on each type's zero value, to find a type declared
// applied that the switch forgot.
func (h Handling) Uncovered(hasCase func(domain.Event) bool) []string {
	var out []string
	for _, t := range domain.EventTypes() {
		if h.Applies.Has(t.Zero()) && !hasCase(t.Zero()) {
			out = append(out, t.Name)
		}
	}
	return out
}

// PersonOf answers the workspace and the person a workspace event is about
// (the owner of a new workspace, the member or invitee of every other event
// about someone); false for an event about no one person (settings, the
// audit's records) or of no workspace (accounts).
func PersonOf(e domain.Event) (workspace, user uuid.UUID, ok bool) {
	switch e := e.(type) {
	case domain.WorkspaceCreated:
		return e.WorkspaceID, e.OwnerUserID, true
	case domain.UserInvited:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationResent:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationRevoked:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationExpired:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationAccepted:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationEmailSent:
		return e.WorkspaceID, e.UserID, true
	case domain.InvitationEmailFailed:
		return e.WorkspaceID, e.UserID, true
	case domain.RoleChanged:
		return e.WorkspaceID, e.UserID, true
	case domain.RoleGrantExpired:
		return e.WorkspaceID, e.UserID, true
	case domain.RoleGrantExpiryRefused:
		return e.WorkspaceID, e.UserID, true
	case domain.MemberRemoved:
		return e.WorkspaceID, e.UserID, true
	case domain.MemberSuspended:
		return e.WorkspaceID, e.UserID, true
	case domain.MemberReactivated:
		return e.WorkspaceID, e.UserID, true
	case domain.UserLoggedIn:
		return e.WorkspaceID, e.UserID, true
	}
	return uuid.Nil, uuid.Nil, false
}
