package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// SchemaVersion is the schema version every event type is written with
// today. A type whose stored form changes registers its own, higher one.
const SchemaVersion = 1

// EventType is what the registry knows of one event type.
type EventType struct {
	// Name is the type's stored name.
	Name string
	// Version is the schema version the type is written with.
	Version int

	goType    reflect.Type
	zero      Event
	decode    func(data []byte, unmarshal Unmarshal) (Event, error)
	workspace func(Event) (uuid.UUID, bool)
	personal  []personalField
}

// personalField is a string field of an event type that identifies a
// person (tag `personal:"<field>"`), and the field holding that person's
// user id: the subject whose key seals it.
type personalField struct {
	index, subject int
	name           string // the JSON name
}

// Zero returns the zero value of the type, as an example of it.
func (t EventType) Zero() Event { return t.zero }

// registry maps stored names to event types and back.
type registry struct {
	byName map[string]*EventType
	byType map[reflect.Type]*EventType
}

// eventTypes is the one registry of event types, filled by registerEvents.
var eventTypes = newRegistry()

func newRegistry() *registry {
	r := &registry{byName: make(map[string]*EventType), byType: make(map[reflect.Type]*EventType)}
	registerEvents(r)
	return r
}

// register declares the event type T: its stored name and its schema
// version. Decoding comes with it: the stored JSON into a T; so does its
// workspace, read from its WorkspaceID field (see workspaceOf). A schema
// version above 1 needs an upcaster from the older versions in
// DecodeEvent's place: add the hook here when the first type needs one. It
// panics on a name or type registered twice, which registerEvents would
// have to be written wrong to do.
func register[T any](r *registry, name string, version int) {
	var zero T
	t := &EventType{
		Name:    name,
		Version: version,
		goType:  reflect.TypeOf(zero),
		zero:    zero,
		decode: func(data []byte, unmarshal Unmarshal) (Event, error) {
			var e T
			if err := unmarshal(data, &e); err != nil {
				return nil, err
			}
			return e, nil
		},
	}
	if t.goType.Kind() != reflect.Struct || name == "" || version < 1 {
		panic(fmt.Sprintf("domain: event type %q (%v, version %d) must be a named struct with a name and a version from 1", name, t.goType, version))
	}
	t.workspace = workspaceOf(t.goType)
	t.personal = personalFields(t.goType)
	if _, dup := r.byName[name]; dup {
		panic("domain: event name registered twice: " + name)
	}
	if _, dup := r.byType[t.goType]; dup {
		panic(fmt.Sprintf("domain: event type %v registered twice", t.goType))
	}
	r.byName[name], r.byType[t.goType] = t, t
}

// workspaceOf answers how to read the workspace of an event struct: its
// WorkspaceID field, which every event of a workspace carries; a struct
// without one belongs to no workspace. A WorkspaceID that is not a
// uuid.UUID is a mistake in this package: it panics at start-up.
func workspaceOf(t reflect.Type) func(Event) (uuid.UUID, bool) {
	f, ok := t.FieldByName("WorkspaceID")
	if !ok {
		return func(Event) (uuid.UUID, bool) { return uuid.Nil, false }
	}
	if f.Type != reflect.TypeOf(uuid.UUID{}) || len(f.Index) != 1 {
		panic(fmt.Sprintf("domain: %v.WorkspaceID must be a uuid.UUID field of the struct", t))
	}
	i := f.Index[0]
	return func(e Event) (uuid.UUID, bool) { return reflect.ValueOf(e).Field(i).Interface().(uuid.UUID), true }
}

// personalFields reads the personal tags of an event struct. A tag naming
// no uuid.UUID field, or on a field that is not a string, is a mistake in
// this package: it panics at start-up rather than leaving data unsealed.
func personalFields(t reflect.Type) []personalField {
	var out []personalField
	for i := range t.NumField() {
		f := t.Field(i)
		subject, ok := f.Tag.Lookup("personal")
		if !ok {
			continue
		}
		s, found := t.FieldByName(subject)
		if !found || s.Type != reflect.TypeOf(uuid.UUID{}) || f.Type.Kind() != reflect.String || len(s.Index) != 1 {
			panic(fmt.Sprintf("domain: %v.%s: personal tag must name a uuid.UUID field of the struct, on a string field", t, f.Name))
		}
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, personalField{index: i, subject: s.Index[0], name: jsonName})
	}
	return out
}

// PersonalValue is one value of an event that identifies a person.
type PersonalValue struct {
	// Field is the value's JSON name in the event.
	Field string
	// Subject is the person it identifies, whose key seals it.
	Subject uuid.UUID
	Value   string
}

// Personal lists the personal values of an event (its fields tagged
// personal), in field order; nil for a value that is not a registered event.
func Personal(e Event) []PersonalValue {
	t, ok := eventTypes.byType[reflect.TypeOf(e)]
	if !ok || len(t.personal) == 0 {
		return nil
	}
	v := reflect.ValueOf(e)
	out := make([]PersonalValue, len(t.personal))
	for i, p := range t.personal {
		out[i] = PersonalValue{Field: p.name, Subject: v.Field(p.subject).Interface().(uuid.UUID), Value: v.Field(p.index).String()}
	}
	return out
}

// MapPersonal answers a copy of e with each personal value replaced by what
// f answers for it (sealed on the way to the store, opened on the way
// back). e itself is not changed. An event with no personal values is
// answered as it is.
func MapPersonal(e Event, f func(v PersonalValue) (string, error)) (Event, error) {
	t, ok := eventTypes.byType[reflect.TypeOf(e)]
	if !ok {
		return nil, fmt.Errorf("%T: not a registered event type", e)
	}
	if len(t.personal) == 0 {
		return e, nil
	}
	v := reflect.New(t.goType).Elem()
	v.Set(reflect.ValueOf(e))
	for _, p := range t.personal {
		field := v.Field(p.index)
		s, err := f(PersonalValue{Field: p.name, Subject: v.Field(p.subject).Interface().(uuid.UUID), Value: field.String()})
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name, p.name, err)
		}
		field.SetString(s)
	}
	return v.Interface(), nil
}

// TypeOf answers the registered type of an event; false for a value that is
// not a registered event.
func TypeOf(e Event) (EventType, bool) {
	t, ok := eventTypes.byType[reflect.TypeOf(e)]
	if !ok {
		return EventType{}, false
	}
	return *t, true
}

// EventName answers the stored name of an event's type, or "" for a value
// that is not a registered event.
func EventName(e Event) string {
	if t, ok := eventTypes.byType[reflect.TypeOf(e)]; ok {
		return t.Name
	}
	return ""
}

// WorkspaceOf answers the workspace an event belongs to; false for an event
// of no workspace (AccountRegistered) and for a value that is not an event.
func WorkspaceOf(e Event) (uuid.UUID, bool) {
	if t, ok := eventTypes.byType[reflect.TypeOf(e)]; ok {
		return t.workspace(e)
	}
	return uuid.Nil, false
}

// EventTypes lists every registered event type, by name.
func EventTypes() []EventType {
	out := make([]EventType, 0, len(eventTypes.byName))
	for _, t := range eventTypes.byName {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b EventType) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// EventTypeNames lists the stored name of every registered event type.
func EventTypeNames() []string {
	names := make([]string, 0, len(eventTypes.byName))
	for n := range eventTypes.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// EncodeEvent serialises an event for storage.
func EncodeEvent(e Event) ([]byte, error) {
	t, ok := eventTypes.byType[reflect.TypeOf(e)]
	if !ok {
		return nil, fmt.Errorf("encode %T: not a registered event type", e)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t.Name, err)
	}
	return data, nil
}

// Unmarshal decodes JSON into the value v points to, as encoding/json's
// Unmarshal does.
type Unmarshal func(data []byte, v any) error

// DecodeEvent turns stored data back into the current struct of its type.
func DecodeEvent(name string, version int, data []byte) (Event, error) {
	return DecodeEventWith(name, version, data, json.Unmarshal)
}

// DecodeEventWith is DecodeEvent with the JSON decoded by unmarshal, which
// must read every input exactly as encoding/json does: the event store
// passes a faster decoder than this package may import, and rebuilds spend
// much of their time here.
func DecodeEventWith(name string, version int, data []byte, unmarshal Unmarshal) (Event, error) {
	t, ok := eventTypes.byName[name]
	if !ok {
		return nil, fmt.Errorf("decode %s: unknown event type", name)
	}
	if version < 1 {
		return nil, fmt.Errorf("decode %s: schema version %d is not valid", name, version)
	}
	if version > t.Version {
		return nil, fmt.Errorf("decode %s: schema version %d is newer than this build knows (%d)", name, version, t.Version)
	}
	if version < t.Version {
		return nil, fmt.Errorf("decode %s: schema version %d has no upcaster to %d", name, version, t.Version)
	}
	e, err := t.decode(data, unmarshal)
	if err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", name, version, err)
	}
	return e, nil
}
