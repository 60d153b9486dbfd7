package broker

import (
	"encoding/json"

	"github.com/usersd/usersd/domain"
)

// line is the event's line of the event feed.
//
// TEMPORARY: replaced by the feed's own encoder (projections/feed) once it
// lands; the shape is the feed's.
func line(e domain.RecordedEvent) ([]byte, error) {
	data, err := domain.EncodeEvent(e.Event)
	if err != nil {
		return nil, err
	}
	var ws *string
	if id, ok := domain.WorkspaceOf(e.Event); ok {
		s := id.String()
		ws = &s
	}
	return json.Marshal(struct {
		Position    string          `json:"position"`
		EventID     string          `json:"eventId"`
		Type        string          `json:"type"`
		WorkspaceID *string         `json:"workspaceId"`
		OccurredAt  string          `json:"occurredAt"`
		Data        json.RawMessage `json:"data"`
		Metadata    any             `json:"metadata"`
	}{
		Position: e.Position.String(), EventID: e.Metadata.EventID.String(), Type: domain.EventName(e.Event),
		WorkspaceID: ws, OccurredAt: e.Metadata.OccurredAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		Data: data, Metadata: map[string]any{"correlationId": e.Metadata.CorrelationID},
	})
}
