package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// Stream name prefixes. Every stream of ours starts with one of them, which
// is also the server-side filter of EventStoreDB subscriptions.
const (
	WorkspacePrefix = "workspace-"
	AccountPrefix   = "account-"
	LoginsPrefix    = "logins-"
	PersonPrefix    = "person-"
)

// StreamPrefixes lists the prefixes of our streams.
var StreamPrefixes = []string{WorkspacePrefix, AccountPrefix, LoginsPrefix, PersonPrefix}

// WorkspaceStream names the stream of one workspace's membership aggregate.
func WorkspaceStream(id uuid.UUID) string { return WorkspacePrefix + id.String() }

// LegacyAccountStream names the stream that reserved an e-mail address
// before stream names were keyed (Codec.AccountStream): a plain SHA-256 of
// the address. Accounts still reads it, so that an account reserved then
// keeps its id; nothing new is written to it.
func LegacyAccountStream(e domain.Email) string {
	sum := sha256.Sum256([]byte(e))
	return AccountPrefix + hex.EncodeToString(sum[:])
}

// PersonStream names the stream of one person's account: its deletion.
func PersonStream(id uuid.UUID) string { return PersonPrefix + id.String() }

// LoginsStream names the stream of one workspace's logins.
func LoginsStream(workspace uuid.UUID) string { return LoginsPrefix + workspace.String() }

// IsOurs reports whether a stream belongs to usersd.
func IsOurs(stream string) bool {
	for _, p := range StreamPrefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// IsOurRecord reports whether a stored record is one usersd wrote: its
// stream is named exactly as ours are (a prefix and then a workspace id or
// an address hash or a person id, not only the prefix), and its metadata carries its own
// event id, as Encode writes it. On an EventStoreDB cluster other
// applications share, their records in streams whose names happen to start
// like ours fail this and are skipped rather than stopping a projection.
func IsOurRecord(r RecordedEvent) bool {
	if !isOurStreamName(r.StreamID) {
		return false
	}
	var meta struct {
		EventID uuid.UUID `json:"eventId"`
	}
	return json.Unmarshal(r.Metadata, &meta) == nil && meta.EventID == r.ID && r.ID != uuid.Nil
}

func isOurStreamName(stream string) bool {
	for _, p := range []string{WorkspacePrefix, LoginsPrefix, PersonPrefix} {
		if rest, ok := strings.CutPrefix(stream, p); ok {
			id, err := uuid.Parse(rest)
			return err == nil && id.String() == rest
		}
	}
	if rest, ok := strings.CutPrefix(stream, AccountPrefix); ok {
		return len(rest) == 2*sha256.Size && strings.ToLower(rest) == rest && isHex(rest)
	}
	return false
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
