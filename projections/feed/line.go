// Package feed is the event feed's one definition: the line each event is
// written as (GET /v1/events, usersd events export, the NATS messages'
// body), the filter of its query, and Copy, which streams the history
// through them from any position and may follow it live.
//
// A line is one JSON object:
//
//	{"position", "eventId", "type", "workspaceId", "occurredAt", "data", "metadata"}
//
// position is domain.Position's string form; workspaceId is null for an
// event of no workspace (AccountRegistered, AccountDeleted); occurredAt is
// RFC 3339 in UTC; data is the event's fields (its stored JSON, opened);
// metadata is {"schemaVersion", "actor", "correlationId"?, "causationId"?,
// "request"?}.
//
// Personal values show opened for living people. A person whose key was
// destroyed (domain.RecordedEvent.Erased) shows nothing readable: each of
// their personal fields in data is null, and as the actor they are
// {"userId", "email": null, "erased": true} without the request context.
package feed

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Line answers the event's line, as one JSON object without a newline: the
// body of a message that carries one event.
func Line(ev domain.RecordedEvent) ([]byte, error) {
	return appendObject(nil, ev)
}

// AppendLine appends the event's line and a newline to dst: one line of
// NDJSON.
func AppendLine(dst []byte, ev domain.RecordedEvent) ([]byte, error) {
	out, err := appendObject(dst, ev)
	if err != nil {
		return dst, err
	}
	return append(out, '\n'), nil
}

// AppendHeartbeat appends a heartbeat line and a newline to dst:
// {"type":"heartbeat","position":"<pos>"}, pos being the position the feed
// has read up to (every event up to it that the filter keeps was written
// before), from which a client may resume.
func AppendHeartbeat(dst []byte, pos domain.Position) []byte {
	dst = append(dst, `{"type":"heartbeat","position":"`...)
	dst = append(dst, pos.String()...)
	return append(dst, "\"}\n"...)
}

// HeartbeatType is the type of a heartbeat line, which no event type has.
const HeartbeatType = "heartbeat"

func appendObject(dst []byte, ev domain.RecordedEvent) ([]byte, error) {
	name := domain.EventName(ev.Event)
	if name == "" {
		return dst, fmt.Errorf("feed: %T at %s is not a registered event type", ev.Event, ev.Position)
	}
	data, err := Data(ev)
	if err != nil {
		return dst, err
	}
	meta, err := json.Marshal(metadataOf(ev))
	if err != nil {
		return dst, fmt.Errorf("feed: metadata of %s at %s: %w", name, ev.Position, err)
	}
	dst = append(dst, `{"position":"`...)
	dst = append(dst, ev.Position.String()...)
	dst = append(dst, `","eventId":"`...)
	dst = appendUUID(dst, ev.Metadata.EventID)
	// Registered names are ASCII letters: nothing to escape.
	dst = append(dst, `","type":"`...)
	dst = append(dst, name...)
	dst = append(dst, `","workspaceId":`...)
	if ws, ok := domain.WorkspaceOf(ev.Event); ok {
		dst = append(dst, '"')
		dst = appendUUID(dst, ws)
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"occurredAt":`...)
	if at := ev.Metadata.OccurredAt; at.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = at.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"metadata":`...)
	dst = append(dst, meta...)
	return append(dst, '}'), nil
}

func appendUUID(dst []byte, id uuid.UUID) []byte { return append(dst, id.String()...) }

// Data is the event's JSON, opened, with every personal field of an
// erased person null (rather than the "" it opened as): the feed's "data",
// and the webhooks' (adapters/messaging/webhooks).
func Data(ev domain.RecordedEvent) ([]byte, error) {
	data, err := domain.EncodeEvent(ev.Event)
	if err != nil || len(ev.Erased) == 0 {
		return data, err
	}
	var blank []string
	for _, p := range domain.Personal(ev.Event) {
		if slices.Contains(ev.Erased, p.Subject) {
			blank = append(blank, p.Field)
		}
	}
	if len(blank) == 0 {
		return data, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("feed: data of %s at %s: %w", domain.EventName(ev.Event), ev.Position, err)
	}
	for _, f := range blank {
		fields[f] = json.RawMessage("null")
	}
	return json.Marshal(fields)
}

// metadata is the feed's view of domain.Metadata: the event id and time are
// on the line itself.
type metadata struct {
	SchemaVersion int             `json:"schemaVersion"`
	Actor         actor           `json:"actor"`
	CorrelationID string          `json:"correlationId,omitempty"`
	CausationID   string          `json:"causationId,omitempty"`
	Request       *requestContext `json:"request,omitempty"`
}

type actor struct {
	UserID *uuid.UUID `json:"userId,omitempty"`
	// Email is omitted when there is none, null when it was erased.
	Email  optionalString `json:"email,omitzero"`
	System bool           `json:"system,omitempty"`
	Erased bool           `json:"erased,omitempty"`
}

type requestContext struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// optionalString is a string that may be absent (its zero value, omitted
// with omitzero) or null.
type optionalString struct {
	value string
	set   bool
	null  bool
}

func (s optionalString) IsZero() bool { return !s.set && !s.null }

func (s optionalString) MarshalJSON() ([]byte, error) {
	if s.null {
		return []byte("null"), nil
	}
	return json.Marshal(s.value)
}

func metadataOf(ev domain.RecordedEvent) metadata {
	m := ev.Metadata
	out := metadata{
		SchemaVersion: m.SchemaVersion,
		CorrelationID: m.CorrelationID,
		CausationID:   m.CausationID,
		Actor:         actor{System: m.Actor.System},
	}
	if out.SchemaVersion == 0 {
		out.SchemaVersion = domain.SchemaVersion
	}
	if id := m.Actor.UserID; id != uuid.Nil {
		out.Actor.UserID = &id
		if slices.Contains(ev.Erased, id) {
			// Their address and request context opened as "": say so,
			// and show nothing of them.
			out.Actor.Erased = true
			out.Actor.Email = optionalString{null: true}
			return out
		}
	}
	if m.Actor.Email != "" {
		out.Actor.Email = optionalString{value: m.Actor.Email, set: true}
	}
	if r := m.Request; r != nil && (r.IP != "" || r.UserAgent != "") {
		out.Request = &requestContext{IP: r.IP, UserAgent: r.UserAgent}
	}
	return out
}
