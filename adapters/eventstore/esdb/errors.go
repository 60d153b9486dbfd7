package esdb

import (
	"errors"
	"fmt"
	"strings"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/commands"
)

// Errors the adapter gives up on: no retry or resubscription cures them.
// Each comes wrapped with what was being done.
var (
	// ErrAccessDenied: the server refused the operation to usersd's user
	// (PermissionDenied), e.g. reading $all without the right to.
	ErrAccessDenied = errors.New("the event store denied access: give usersd's user the rights docs/esdb.md lists (reading $all, writing its streams)")
	// ErrUnauthenticated: the server refused the credentials.
	ErrUnauthenticated = errors.New("the event store refused the credentials of the connection string")
	// ErrStreamDeleted: the stream was deleted (tombstoned) in the server.
	// usersd never deletes a stream; an operator did.
	ErrStreamDeleted = errors.New("the stream is deleted in the event store (usersd never deletes streams)")
	// ErrInvalidPosition: a subscription started from a position the server
	// does not have, typically a checkpoint kept from another database
	// (a restore from another cluster, or ESDB_URL pointing elsewhere).
	ErrInvalidPosition = errors.New("the event store has no such position: the checkpoint comes from another database; rebuild the projections (usersd projections rebuild) or point ESDB_URL at the database they were built from")
	// ErrTooLarge: the append exceeds the server's size limit.
	ErrTooLarge = errors.New("the append exceeds the event store's maximum append size")
)

// codeOf returns the client's error code. Errors the client passes through
// untranslated (a subscription's Recv, the status codes the client does not
// map) are classified by their gRPC status in the same way.
func codeOf(err error) esdbclient.ErrorCode {
	st, isStatus := status.FromError(err)
	if isStatus && st.Code() == codes.NotFound && strings.Contains(st.Message(), "Leader info available") {
		return esdbclient.ErrorCodeNotLeader // a follower's answer, whatever the client made of it
	}
	var e *esdbclient.Error
	if errors.As(err, &e) && e.Code() != esdbclient.ErrorCodeUnknown {
		return e.Code()
	}
	if c, ok := statusCodes[st.Code()]; isStatus && ok {
		return c
	}
	return esdbclient.ErrorCodeUnknown
}

// statusCodes are the client's codes of the gRPC statuses it passes
// through untranslated; any other status is ErrorCodeUnknown.
var statusCodes = map[codes.Code]esdbclient.ErrorCode{
	codes.Unauthenticated:  esdbclient.ErrorCodeUnauthenticated,
	codes.Unimplemented:    esdbclient.ErrorCodeUnsupportedFeature,
	codes.NotFound:         esdbclient.ErrorCodeResourceNotFound,
	codes.PermissionDenied: esdbclient.ErrorCodeAccessDenied,
	codes.DeadlineExceeded: esdbclient.ErrorCodeDeadlineExceeded,
	codes.Aborted:          esdbclient.ErrorAborted,
	codes.Unavailable:      esdbclient.ErrorUnavailable,
}

// grpcCode returns the gRPC status code within err, or codes.Unknown.
func grpcCode(err error) codes.Code {
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// discoveryGaveUp reports the error of a client whose discovery failed
// maxDiscoverAttempts times: its connection loop has ended, and every later
// call fails with ErrorCodeConnectionClosed. The client says so only in the
// message (its code is the last attempt's, often Unknown).
func discoveryGaveUp(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// noLeaderInfo reports a follower's answer during an election: it may not
// serve the call and knows no leader yet.
func noLeaderInfo(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unknown && strings.Contains(st.Message(), "No leader info")
}

// transient reports whether a call may succeed if made again after a
// pause. These are the answers of a cluster in motion:
//
//   - Unavailable: the node went away, or answers "Server Is Not Ready" /
//     "Server Is Too Busy" / "The node is not ready yet"; the client
//     discovers a node again;
//   - not leader: the client reconnects to the leader it names;
//   - Unknown "No leader info available": a follower during an election;
//   - Aborted ("Operation timed out", a commit or forward timeout: the
//     write may still commit) and DeadlineExceeded: an append is sent
//     again with the same ids, which the server recognises;
//   - a client whose discovery gave up: a new client is made.
//
// Anything else (access denied, bad credentials, a deleted stream, an
// invalid position or argument, an unknown error) is given up on.
func transient(err error) bool {
	switch codeOf(err) {
	case esdbclient.ErrorUnavailable, esdbclient.ErrorCodeNotLeader,
		esdbclient.ErrorCodeDeadlineExceeded, esdbclient.ErrorAborted:
		return true
	}
	return noLeaderInfo(err) || discoveryGaveUp(err)
}

// givenUp is the error of a call given up on: what a cluster in motion
// answers (transient, once the retries are spent), a connection closed
// under the call or a client that gave up on discovery comes wrapped in
// commands.ErrUnavailable, so that callers tell an outage from a fault
// without knowing the client's codes; anything else gets its sentinel
// (explain).
func givenUp(err error) error {
	if transient(err) || codeOf(err) == esdbclient.ErrorCodeConnectionClosed || errors.Is(err, errGaveUp) {
		return fmt.Errorf("%w: %w", commands.ErrUnavailable, err)
	}
	return explain(err)
}

// explain gives a permanent error its sentinel, so that callers (and
// their logs) can tell what to do about it.
func explain(err error) error {
	var sentinel error
	switch {
	case codeOf(err) == esdbclient.ErrorCodeAccessDenied:
		sentinel = ErrAccessDenied
	case codeOf(err) == esdbclient.ErrorCodeUnauthenticated:
		sentinel = ErrUnauthenticated
	case codeOf(err) == esdbclient.ErrorCodeStreamDeleted || deletedStatus(err):
		sentinel = ErrStreamDeleted
	case grpcCode(err) == codes.InvalidArgument && strings.Contains(statusMessage(err), "Maximum Append"):
		sentinel = ErrTooLarge
	default:
		return err
	}
	return fmt.Errorf("%w (%v)", sentinel, err)
}

// deletedStatus recognises a deleted stream in an untranslated status (a
// subscription or a read's stream).
func deletedStatus(err error) bool {
	return grpcCode(err) == codes.FailedPrecondition && strings.Contains(statusMessage(err), "is deleted")
}

func statusMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return ""
}
