package domain

import (
	"time"

	"github.com/google/uuid"
)

// Event is a fact the domain recorded: a value of one of the plain structs
// below, each registered in registerEvents with its stored name. A struct
// holds primitive fields with JSON tags and no logic, so that an old event
// always decodes; a breaking change registers a new schema version and an
// upcaster (see register) instead of editing a struct.
type Event any

// registerEvents declares every event type: its stored name (never
// renamed: it is stored with every event), its schema version, and the
// workspace it belongs to (nil for an event of no workspace). Adding an event
// is its struct above and its line here.
func registerEvents(r *registry) {
	register(r, "WorkspaceCreated", 1, func(e WorkspaceCreated) uuid.UUID { return e.WorkspaceID })
	register(r, "UserInvited", 1, func(e UserInvited) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationResent", 1, func(e InvitationResent) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationRevoked", 1, func(e InvitationRevoked) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationExpired", 1, func(e InvitationExpired) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationAccepted", 1, func(e InvitationAccepted) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationEmailSent", 1, func(e InvitationEmailSent) uuid.UUID { return e.WorkspaceID })
	register(r, "InvitationEmailFailed", 1, func(e InvitationEmailFailed) uuid.UUID { return e.WorkspaceID })
	register(r, "RoleChanged", 1, func(e RoleChanged) uuid.UUID { return e.WorkspaceID })
	register(r, "MemberRemoved", 1, func(e MemberRemoved) uuid.UUID { return e.WorkspaceID })
	register(r, "MemberSuspended", 1, func(e MemberSuspended) uuid.UUID { return e.WorkspaceID })
	register(r, "MemberReactivated", 1, func(e MemberReactivated) uuid.UUID { return e.WorkspaceID })
	register(r, "WorkspaceSettingsChanged", 1, func(e WorkspaceSettingsChanged) uuid.UUID { return e.WorkspaceID })
	register(r, "UserLoggedIn", 1, func(e UserLoggedIn) uuid.UUID { return e.WorkspaceID })
	register[AccountRegistered](r, "AccountRegistered", 1, nil)
}

// WorkspaceCreated opens a workspace; its owner is an active Admin at once.
type WorkspaceCreated struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	Name        string    `json:"name"`
	OwnerUserID uuid.UUID `json:"ownerUserId"`
	OwnerEmail  string    `json:"ownerEmail"`
	OwnerName   string    `json:"ownerName"`
	CreatedAt   time.Time `json:"createdAt"`
}

// UserInvited records one invitation. Escalation is true when the role
// granted ranks above the inviter's own (a Manager inviting an Admin).
// TokenHash is the only trace of the link's secret.
type UserInvited struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	Role         string    `json:"role"`
	InvitedBy    uuid.UUID `json:"invitedBy"`
	InviterRole  string    `json:"inviterRole"`
	Escalation   bool      `json:"escalation"`
	TokenHash    string    `json:"tokenHash"`
	InvitedAt    time.Time `json:"invitedAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// InvitationResent replaces an invitation's token (the old link dies) and
// restarts its validity; Attempt counts the e-mails sent for it, from 1.
type InvitationResent struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	Attempt      int       `json:"attempt"`
	ResentBy     uuid.UUID `json:"resentBy"`
	TokenHash    string    `json:"tokenHash"`
	ResentAt     time.Time `json:"resentAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// InvitationRevoked withdraws a pending invitation.
type InvitationRevoked struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	Role         string    `json:"role"`
}

// InvitationExpired marks an invitation whose time ran out. A resend revives it.
type InvitationExpired struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	ExpiredAt    time.Time `json:"expiredAt"`
}

// InvitationAccepted makes the invitee an active member with the invited role.
type InvitationAccepted struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	AcceptedAt   time.Time `json:"acceptedAt"`
}

// InvitationEmailSent records that the e-mail of one attempt left us.
type InvitationEmailSent struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Attempt      int       `json:"attempt"`
}

// InvitationEmailFailed records that the e-mail of one attempt could not be
// delivered after the last retry, or was refused for good.
type InvitationEmailFailed struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Attempt      int       `json:"attempt"`
	Reason       string    `json:"reason"`
}

// RoleChanged moves a member (or a pending invitation) to another role.
// ChangedBy matters for invitations: the Admin who changed the role becomes
// the one whose right to grant it is checked at acceptance.
type RoleChanged struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	FromRole    string    `json:"fromRole"`
	ToRole      string    `json:"toRole"`
	ChangedBy   uuid.UUID `json:"changedBy"`
}

// MemberRemoved revokes a member's access to this workspace only.
type MemberRemoved struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
}

// MemberSuspended blocks a member's access but keeps the membership.
type MemberSuspended struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
}

// MemberReactivated gives a suspended member access again.
type MemberReactivated struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
}

// WorkspaceSettingsChanged sets the workspace's settings.
type WorkspaceSettingsChanged struct {
	WorkspaceID           uuid.UUID `json:"workspaceId"`
	ManagersMayGrantAdmin bool      `json:"managersMayGrantAdmin"`
}

// UserLoggedIn is reported by the platform at each login. It lives on a
// stream of its own so logins never contend with membership changes.
type UserLoggedIn struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	LoggedInAt  time.Time `json:"loggedInAt"`
}

// AccountRegistered reserves an e-mail address for one user id, across all
// workspaces. It is the first event of the address's own stream.
type AccountRegistered struct {
	UserID uuid.UUID `json:"userId"`
	Email  string    `json:"email"`
}

// Actor is who caused an event, as they were at that moment.
type Actor struct {
	UserID uuid.UUID `json:"userId,omitempty"`
	Email  string    `json:"email,omitempty"`
	// System is true for the platform itself and for our own background
	// work (the mailer, expiry), which act for no person.
	System bool `json:"system,omitempty"`
}

// RequestContext is what is known of the request that caused an event.
type RequestContext struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// Metadata travels with every stored event.
type Metadata struct {
	EventID       uuid.UUID       `json:"eventId"`
	SchemaVersion int             `json:"schemaVersion"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Actor         Actor           `json:"actor"`
	CorrelationID string          `json:"correlationId,omitempty"`
	CausationID   string          `json:"causationId,omitempty"`
	Request       *RequestContext `json:"request,omitempty"`
}

// Envelope is an event with its metadata.
type Envelope struct {
	Event    Event
	Metadata Metadata
}

// RecordedEvent is an envelope as the store keeps it: in a stream, at a
// revision, at a global position. Projections consume these.
type RecordedEvent struct {
	Envelope
	StreamID string
	Revision uint64
	Position Position
}
