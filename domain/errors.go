package domain

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code. The HTTP adapter maps codes
// to status codes in one table; clients match on them, so they never change.
type Code string

const (
	CodeInvalidInput        Code = "invalid_input"
	CodeInvalidEmail        Code = "invalid_email"
	CodeInvalidRole         Code = "invalid_role"
	CodeInvalidName         Code = "invalid_name"
	CodeEmptyBatch          Code = "empty_batch"
	CodeBatchTooLarge       Code = "batch_too_large"
	CodeWorkspaceNotFound   Code = "workspace_not_found"
	CodeWorkspaceExists     Code = "workspace_exists"
	CodeUserNotFound        Code = "user_not_found"
	CodeInvitationNotFound  Code = "invitation_not_found"
	CodeNotAllowed          Code = "not_allowed"
	CodeMemberSuspended     Code = "member_suspended"
	CodeLastAdmin           Code = "last_admin"
	CodeNotActive           Code = "not_active"
	CodeNotInvited          Code = "not_invited"
	CodeInvalidToken        Code = "invalid_token"
	CodeInvitationExpired   Code = "invitation_expired"
	CodeInvitationRevoked   Code = "invitation_revoked"
	CodeInvitationUsed      Code = "invitation_used"
	CodeInviterCannotGrant  Code = "inviter_cannot_grant"
	CodeRateLimited         Code = "rate_limited"
	CodeConcurrencyConflict Code = "concurrency_conflict"
	CodeAccountNotFound     Code = "account_not_found"
	CodeWebhookURLForbidden Code = "webhook_url_forbidden"
	CodeWebhookNotFound     Code = "webhook_not_found"
	CodeWebhookLimit        Code = "webhook_limit"
	CodeReviewNotFound      Code = "review_not_found"
	CodeNotInReview         Code = "not_in_review"
	CodeReviewCompleted     Code = "review_completed"
	CodeReviewIncomplete    Code = "review_incomplete"
	CodeTooManyOpenReviews  Code = "too_many_open_reviews"
)

// Error is a domain error: a stable code and a message a person can act on.
// Messages never contain tokens; they may name the address the caller sent.
// A message is for people only: code reads Code and Field, never Message.
type Error struct {
	Code    Code
	Message string
	// Field names the input the error is about, as the domain's functions
	// and the commands name it ("name", "ownerName", "ownerEmail", "role",
	// "emails", "token"; a read model's query parameter such as "limit"),
	// or is empty when the error is about no single input. Adapters map it
	// to their own names (the HTTP API's request fields).
	Field string
	// RetryAt, for rate_limited, is when the same request would fit.
	RetryAt time.Time
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is makes errors.Is match any *Error with the same code, so sentinels such as
// ErrLastAdmin match an error carrying a more specific message.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

func newError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// fieldError is newError about one input.
func fieldError(field string, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// about returns err as being about field when it is a domain error, and err
// itself otherwise.
func about(err error, field string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	c := *e
	c.Field = field
	return &c
}

// ErrorCode returns the code of a domain error in err's chain, or "".
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Sentinels for errors.Is.
var (
	ErrConcurrency        = &Error{Code: CodeConcurrencyConflict, Message: "the workspace changed while the command ran; try again"}
	ErrWorkspaceNotFound  = &Error{Code: CodeWorkspaceNotFound, Message: "workspace not found"}
	ErrUserNotFound       = &Error{Code: CodeUserNotFound, Message: "user not found in this workspace"}
	ErrNotAllowed         = &Error{Code: CodeNotAllowed, Message: "your role does not allow this"}
	ErrLastAdmin          = &Error{Code: CodeLastAdmin, Message: "a workspace must keep at least one active Admin"}
	ErrInvalidToken       = &Error{Code: CodeInvalidToken, Field: "token", Message: "the invitation link is not valid"}
	ErrInvitationExpired  = &Error{Code: CodeInvitationExpired, Message: "the invitation has expired; ask for a new one"}
	ErrInvitationRevoked  = &Error{Code: CodeInvitationRevoked, Message: "the invitation was withdrawn or replaced by a newer one"}
	ErrInvitationUsed     = &Error{Code: CodeInvitationUsed, Message: "the invitation has already been accepted"}
	ErrInviterCannotGrant = &Error{Code: CodeInviterCannotGrant, Message: "the person who invited you can no longer grant this role; ask for a new invitation"}
)
