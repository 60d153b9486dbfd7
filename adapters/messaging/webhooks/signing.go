package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/feed"
)

// The headers of a delivery, as Standard Webhooks name them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign is the webhook-signature of a delivery: "v1," and the base64
// HMAC-SHA256, keyed with secret (the bytes after "whsec_", decoded), of
// "{id}.{timestamp}.{body}".
func Sign(secret []byte, id string, timestamp time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(timestamp.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// hiddenFields are fields of events that no webhook receives: the hash of
// an invitation link's secret is of no use outside usersd (the audit
// history leaves it out too).
var hiddenFields = []string{"tokenHash"}

// Body is what a delivery POSTs: {"type", "timestamp", "data"}, data being
// the event's fields as the event feed has them (opened; an erased
// person's personal values null) with its position, event id and
// workspace id. rec needs its event, Erased, metadata's event id and time,
// and position.
func Body(rec domain.RecordedEvent) ([]byte, error) {
	raw, err := feed.Data(rec)
	if err != nil {
		return nil, err
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, fmt.Errorf("the fields of %s: %w", domain.EventName(rec.Event), err)
	}
	for _, f := range hiddenFields {
		delete(data, f)
	}
	ws, _ := domain.WorkspaceOf(rec.Event)
	for k, v := range map[string]string{"position": rec.Position.String(), "eventId": rec.Metadata.EventID.String(), "workspaceId": ws.String()} {
		data[k], _ = json.Marshal(v)
	}
	return json.Marshal(struct {
		Type      string                     `json:"type"`
		Timestamp string                     `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}{domain.EventName(rec.Event), rec.Metadata.OccurredAt.UTC().Format(time.RFC3339Nano), data})
}
