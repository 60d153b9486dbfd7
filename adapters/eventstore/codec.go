package eventstore

import (
	"encoding/json"
	"fmt"

	"github.com/usersd/usersd/domain"
)

// Encode turns a domain event and its metadata into what the store keeps:
// the type's registered name, and its registered schema version in the
// metadata.
func Encode(e domain.Event, meta domain.Metadata) (EventData, error) {
	data, err := domain.EncodeEvent(e)
	if err != nil {
		return EventData{}, err
	}
	t, _ := domain.TypeOf(e) // EncodeEvent refuses a type that is not registered
	meta.SchemaVersion = t.Version
	md, err := json.Marshal(meta)
	if err != nil {
		return EventData{}, fmt.Errorf("encode metadata of %s: %w", t.Name, err)
	}
	return EventData{ID: meta.EventID, Type: t.Name, Data: data, Metadata: md}, nil
}

// Decode turns a stored event back into a domain event with its metadata.
func Decode(r RecordedEvent) (domain.RecordedEvent, error) {
	var meta domain.Metadata
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &meta); err != nil {
			return domain.RecordedEvent{}, fmt.Errorf("decode metadata of %s@%d: %w", r.StreamID, r.Revision, err)
		}
	}
	if meta.SchemaVersion == 0 {
		meta.SchemaVersion = 1
	}
	if meta.EventID == [16]byte{} {
		meta.EventID = r.ID
	}
	e, err := domain.DecodeEvent(r.Type, meta.SchemaVersion, r.Data)
	if err != nil {
		return domain.RecordedEvent{}, fmt.Errorf("%s@%d: %w", r.StreamID, r.Revision, err)
	}
	return domain.RecordedEvent{
		Envelope: domain.Envelope{Event: e, Metadata: meta},
		StreamID: r.StreamID, Revision: r.Revision, Position: r.Position,
	}, nil
}
