package feed

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Filter selects the events a feed writes. The zero Filter keeps every
// event.
type Filter struct {
	// Types keeps only the events of these types (stored names, as
	// ParseTypes answers them); empty keeps every type.
	Types []string
	// Workspace keeps only the events of this workspace (so none of the
	// events of no workspace); uuid.Nil keeps every event.
	Workspace uuid.UUID
}

// Keeps reports whether the feed writes ev.
func (f Filter) Keeps(ev domain.RecordedEvent) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, domain.EventName(ev.Event)) {
		return false
	}
	if f.Workspace != uuid.Nil {
		ws, ok := domain.WorkspaceOf(ev.Event)
		return ok && ws == f.Workspace
	}
	return true
}

// ParseTypes reads a comma-separated list of event types, such as
// "UserInvited,RoleChanged" (spaces around a name and empty items are
// ignored; a name given twice counts once). Nothing (or only commas) keeps
// every type: nil. A name that is no registered event type is a
// domain.CodeInvalidInput error about the field "types" that names it and
// lists the known ones.
func ParseTypes(s string) ([]string, error) {
	known := domain.EventTypeNames()
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		name := strings.TrimSpace(item)
		if name == "" || slices.Contains(out, name) {
			continue
		}
		if !slices.Contains(known, name) {
			return nil, &domain.Error{Code: domain.CodeInvalidInput, Field: "types",
				Message: fmt.Sprintf("%q is not an event type; the types are %s", clip(name, 64), strings.Join(known, ", "))}
		}
		out = append(out, name)
	}
	return out, nil
}

// clip shortens what a client sent to n runes, for an error message.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
