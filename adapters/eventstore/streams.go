package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
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
)

// StreamPrefixes lists the prefixes of our streams.
var StreamPrefixes = []string{WorkspacePrefix, AccountPrefix, LoginsPrefix}

// WorkspaceStream names the stream of one workspace's membership aggregate.
func WorkspaceStream(id uuid.UUID) string { return WorkspacePrefix + id.String() }

// AccountStream names the stream that reserves an e-mail address. It holds a
// hash of the address, so stream names, which end up in logs and metrics,
// carry no personal data.
func AccountStream(e domain.Email) string {
	sum := sha256.Sum256([]byte(e))
	return AccountPrefix + hex.EncodeToString(sum[:])
}

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
