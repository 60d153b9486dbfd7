package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/internal/pii"
)

// Codes of the HTTP layer itself, beside the domain's codes. Like those,
// they are stable: clients match on them.
const (
	codeUnauthenticated      domain.Code = "unauthenticated"
	codeInvalidJSON          domain.Code = "invalid_json"
	codeBodyTooLarge         domain.Code = "body_too_large"
	codeUnsupportedMediaType domain.Code = "unsupported_media_type"
	codeRouteNotFound        domain.Code = "not_found"
	codeMethodNotAllowed     domain.Code = "method_not_allowed"
	codeProjectionLag        domain.Code = "projection_lag"
	codeNotReady             domain.Code = "not_ready"
	codeInternal             domain.Code = "internal"
	// codeTooManyRequests: a per-client limit of the HTTP layer (stream
	// slots, the token endpoints' rate); Retry-After says when to retry.
	codeTooManyRequests domain.Code = "too_many_requests"
	// codeRequestTimeout: the request's body did not arrive in time (the
	// server's read timeout).
	codeRequestTimeout domain.Code = "request_timeout"
	// codeUnavailable: a store the request needs (PostgreSQL, EventStoreDB)
	// does not answer: a restart, a failover. Not a bug: try again.
	codeUnavailable domain.Code = "unavailable"
)

// unavailableRetryAfter is what an unavailable answer's Retry-After asks
// for: a database restart or an EventStoreDB leader election takes seconds.
const unavailableRetryAfter = 2 * time.Second

// statusOf is the one table that maps error codes to HTTP statuses. A code
// missing here is a bug: it answers 500 and the tests list every code.
var statusOf = map[domain.Code]int{
	// Bad input: 400, whether the body is not JSON or a value in it is
	// wrong (one status for "fix your request" keeps clients simple).
	domain.CodeInvalidInput:  http.StatusBadRequest,
	domain.CodeInvalidEmail:  http.StatusBadRequest,
	domain.CodeInvalidRole:   http.StatusBadRequest,
	domain.CodeInvalidName:   http.StatusBadRequest,
	domain.CodeEmptyBatch:    http.StatusBadRequest,
	domain.CodeBatchTooLarge: http.StatusBadRequest,
	// A webhook URL usersd will not call: not http(s), or a private,
	// loopback or link-local target.
	domain.CodeWebhookURLForbidden: http.StatusBadRequest,
	// A token that is malformed or matches no invitation was never valid:
	// 400. Only a token known to have been valid is "gone" (410).
	domain.CodeInvalidToken: http.StatusBadRequest,
	codeInvalidJSON:         http.StatusBadRequest,

	codeUnauthenticated: http.StatusUnauthorized,

	domain.CodeNotAllowed:      http.StatusForbidden,
	domain.CodeMemberSuspended: http.StatusForbidden,

	domain.CodeWorkspaceNotFound:  http.StatusNotFound,
	domain.CodeUserNotFound:       http.StatusNotFound,
	domain.CodeInvitationNotFound: http.StatusNotFound,
	domain.CodeAccountNotFound:    http.StatusNotFound,
	domain.CodeWebhookNotFound:    http.StatusNotFound,
	domain.CodeReviewNotFound:     http.StatusNotFound,
	domain.CodeNotInReview:        http.StatusNotFound,
	codeRouteNotFound:             http.StatusNotFound,

	codeMethodNotAllowed: http.StatusMethodNotAllowed,

	domain.CodeLastAdmin:           http.StatusConflict,
	domain.CodeNotActive:           http.StatusConflict,
	domain.CodeNotInvited:          http.StatusConflict,
	domain.CodeWorkspaceExists:     http.StatusConflict,
	domain.CodeConcurrencyConflict: http.StatusConflict,
	// The token is good but the workspace's state (the granter's role or
	// status, the setting) refuses it now; it may be honoured again if that
	// state changes back, so it is a conflict, not gone.
	domain.CodeInviterCannotGrant: http.StatusConflict,
	// The workspace has as many webhooks as it may: remove one first.
	domain.CodeWebhookLimit:       http.StatusConflict,
	domain.CodeReviewCompleted:    http.StatusConflict,
	domain.CodeReviewIncomplete:   http.StatusConflict,
	domain.CodeTooManyOpenReviews: http.StatusConflict,

	domain.CodeInvitationExpired: http.StatusGone,
	domain.CodeInvitationRevoked: http.StatusGone,
	domain.CodeInvitationUsed:    http.StatusGone,
	codeAccountErased:            http.StatusGone,

	codeRequestTimeout:       http.StatusRequestTimeout,
	codeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	codeUnsupportedMediaType: http.StatusUnsupportedMediaType,

	domain.CodeRateLimited: http.StatusTooManyRequests,
	codeTooManyRequests:    http.StatusTooManyRequests,

	codeInternal:      http.StatusInternalServerError,
	codeNotReady:      http.StatusServiceUnavailable,
	codeProjectionLag: http.StatusGatewayTimeout,
	codeUnavailable:   http.StatusServiceUnavailable,
}

// titles are the short, fixed summaries of each code (RFC 9457 "title").
var titles = map[domain.Code]string{
	domain.CodeInvalidInput:        "Invalid input",
	domain.CodeInvalidEmail:        "Invalid e-mail address",
	domain.CodeInvalidRole:         "Invalid role",
	domain.CodeInvalidName:         "Invalid name",
	domain.CodeEmptyBatch:          "No e-mail address",
	domain.CodeBatchTooLarge:       "Too many addresses",
	domain.CodeInvalidToken:        "Invalid invitation link",
	codeInvalidJSON:                "Malformed request body",
	codeUnauthenticated:            "Authentication required",
	domain.CodeNotAllowed:          "Not allowed",
	domain.CodeMemberSuspended:     "Access suspended",
	domain.CodeWorkspaceNotFound:   "Workspace not found",
	domain.CodeUserNotFound:        "User not found",
	domain.CodeInvitationNotFound:  "Invitation not found",
	domain.CodeAccountNotFound:     "Account not found",
	domain.CodeReviewNotFound:      "Access review not found",
	domain.CodeNotInReview:         "Not in the review",
	domain.CodeReviewCompleted:     "Access review completed",
	domain.CodeReviewIncomplete:    "Access review not complete",
	domain.CodeTooManyOpenReviews:  "Too many open access reviews",
	codeAccountErased:              "Account erased",
	codeRouteNotFound:              "Not found",
	codeMethodNotAllowed:           "Method not allowed",
	domain.CodeLastAdmin:           "Last active Admin",
	domain.CodeNotActive:           "Not an active member",
	domain.CodeNotInvited:          "No pending invitation",
	domain.CodeWorkspaceExists:     "Workspace exists",
	domain.CodeConcurrencyConflict: "Concurrent change",
	domain.CodeInviterCannotGrant:  "Invitation no longer honoured",
	domain.CodeInvitationExpired:   "Invitation expired",
	domain.CodeInvitationRevoked:   "Invitation withdrawn",
	domain.CodeInvitationUsed:      "Invitation already used",
	codeBodyTooLarge:               "Request body too large",
	codeUnsupportedMediaType:       "Unsupported content type",
	domain.CodeRateLimited:         "Too many invitations",
	codeTooManyRequests:            "Too many requests",
	codeRequestTimeout:             "Request body too slow",
	codeInternal:                   "Internal error",
	codeNotReady:                   "Not ready",
	codeProjectionLag:              "Read models lag behind",
	codeUnavailable:                "Service unavailable",
	domain.CodeWebhookURLForbidden: "Webhook URL not allowed",
	domain.CodeWebhookNotFound:     "Webhook not found",
	domain.CodeWebhookLimit:        "Too many webhooks",
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem detail with a stable code.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Code   domain.Code  `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
	// Workspaces, of last_admin refusing an account's deletion, are where
	// the person is the last active Admin.
	Workspaces []uuid.UUID `json:"workspaces,omitempty"`
	// RequestID lets a caller quote the request in a support ticket.
	RequestID string `json:"requestId,omitempty"`

	retryAt time.Time
	cause   error // logged, never shown
}

func (p *Problem) Error() string { return string(p.Code) + ": " + p.Detail }

// problemTypeBase prefixes every problem type: a stable, non-dereferenceable
// URI per code.
const problemTypeBase = "urn:usersd:problem:"

// newProblem makes the problem of code with a detail for people.
func newProblem(code domain.Code, detail string) *Problem {
	return &Problem{Code: code, Detail: detail}
}

// withField adds a field error and returns p.
func (p *Problem) withField(field, msg string) *Problem {
	p.Errors = append(p.Errors, FieldError{Field: field, Message: msg})
	return p
}

// fields maps the inputs a domain error may be about (domain.Error.Field)
// to the request's fields, per endpoint, so that validation errors name the
// field as the request spelled it.
type fields map[string]string

// toProblem turns any error into a problem: a domain error keeps its code
// and message; a problem stays as it is; a store that does not answer is
// unavailable (503, see unavailable); anything else is internal.
func toProblem(err error, fs fields) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var last *commands.LastAdminError
	if errors.As(err, &last) {
		return &Problem{Code: domain.CodeLastAdmin, Detail: last.Error(), Workspaces: last.Workspaces}
	}
	if errors.Is(err, pii.ErrErased) {
		// A person the command names was deleted on another replica while
		// it ran: the same command again reserves the address anew.
		return &Problem{Code: domain.CodeConcurrencyConflict, Detail: "a person this request names was deleted meanwhile; try again"}
	}
	var de *domain.Error
	if errors.As(err, &de) {
		p = &Problem{Code: de.Code, Detail: de.Message, retryAt: de.RetryAt}
		if _, known := statusOf[de.Code]; !known {
			p.Code, p.Detail, p.cause = codeInternal, "internal error", err
		}
		if f, ok := fs[de.Field]; ok && de.Field != "" {
			p.Errors = append(p.Errors, FieldError{Field: f, Message: de.Message})
		}
		return p
	}
	if unavailable(err) {
		return &Problem{
			Code: codeUnavailable, Detail: "a database the service needs is not answering; try again shortly",
			retryAt: time.Now().Add(unavailableRetryAfter), cause: err,
		}
	}
	return &Problem{Code: codeInternal, Detail: "internal error; quote the request id when reporting it", cause: err}
}

// waiterOutage answers the unavailable problem of a read that waited in
// vain (err) because the waiter lost the database (its Health, when it has
// one), and nil when the waiter is fine: then the read models only lag.
func waiterOutage(w Waiter, err error) *Problem {
	h, ok := w.(interface{ Health() error })
	if !ok {
		return nil
	}
	herr := h.Health()
	if herr == nil {
		return nil
	}
	return &Problem{
		Code: codeUnavailable, Detail: "the read models cannot be followed now; try again shortly",
		retryAt: time.Now().Add(unavailableRetryAfter), cause: errors.Join(err, herr),
	}
}

// unavailable reports whether err says that a store did not answer, as
// opposed to a bug: the one place where outages are told from faults, so
// that clients and load balancers can tell them apart (503 against 500).
//
//   - PostgreSQL (pgx): a failed connection attempt (refused, reset, a
//     database not accepting connections, too many clients); an error
//     pgx knows happened before anything was sent (pgconn.SafeToRetry); a
//     connection closed under us or cut mid-answer; the server's own
//     connection-exception class 08 and operator intervention 57P01 to
//     57P03 (admin or crash shutdown, cannot connect now); 53300 too many
//     connections; a closed pool.
//   - Any store adapter's commands.ErrUnavailable: EventStoreDB's adapter
//     wraps it around what a cluster in motion answered once its retries
//     were spent (a node down, an election, a closed connection); the
//     adapter alone knows the client's codes.
//   - Any network error, and a deadline passed while waiting for a store
//     (acquiring a pooled connection, say): the store was too slow.
//
// A request the client cancelled is none of these: it is answered (or not)
// as the client leaving.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, commands.ErrUnavailable) {
		return true // a store adapter's verdict
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // whatever refused it, the server's FATAL included
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03", code == "53300":
			return true
		}
		return false // the server answered: whatever it said is no outage
	}
	var netErr net.Error
	switch {
	case pgconn.SafeToRetry(err), pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// statusClientClosedRequest is the status the access log and the metrics
// record for a request whose client left before its answer (nginx's 499),
// with the outcome outcomeCancelled: not a fault of ours, so not a 500.
// Nothing is sent: nobody is there to read it.
const (
	statusClientClosedRequest = 499
	outcomeCancelled          = "cancelled"
)

// clientGone reports whether r's client has left: its context is
// cancelled (not merely past a deadline of ours).
func clientGone(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.Canceled)
}

// writeProblem answers p as application/problem+json. An internal error of
// a request whose client has left is that departure (a query or a wait cut
// by the request's context): it is recorded as cancelled, logged at debug
// level, and nothing is written.
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, p *Problem) {
	if p.Code == codeInternal && clientGone(r) {
		if info, ok := r.Context().Value(keyRoute).(*routeInfo); ok {
			info.cancelled = true
		}
		log.DebugContext(r.Context(), "request ended by the client", "request_id", requestID(r.Context()), "err", p.cause)
		return
	}
	status, ok := statusOf[p.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p.Status = status
	p.Type = problemTypeBase + string(p.Code)
	if t, ok := titles[p.Code]; ok {
		p.Title = t
	} else {
		p.Title = http.StatusText(status)
	}
	p.RequestID = requestID(r.Context())
	if info, ok := r.Context().Value(keyRoute).(*routeInfo); ok {
		info.code = string(p.Code)
	}
	if status >= 500 && p.cause != nil {
		level := slog.LevelError
		if p.Code == codeUnavailable {
			level = slog.LevelWarn // an outage, logged; not a bug to chase
		}
		log.Log(r.Context(), level, "request failed", "request_id", p.RequestID, "code", p.Code, "err", p.cause)
	}
	h := w.Header()
	if p.Code == codeUnauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="usersd"`)
	}
	if !p.retryAt.IsZero() { // rate_limited, too_many_requests, unavailable
		secs := math.Ceil(time.Until(p.retryAt).Seconds())
		h.Set("Retry-After", strconv.Itoa(max(1, int(secs))))
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	b, _ := json.Marshal(p)
	_, _ = w.Write(append(b, '\n'))
}
