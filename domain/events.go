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
// renamed: it is stored with every event) and its schema version. An event
// belongs to the workspace its WorkspaceID field names; AccountRegistered
// and AccountDeleted, which have none, belong to no workspace. Adding an
// event is its struct below and its line here.
func registerEvents(r *registry) {
	register[WorkspaceCreated](r, "WorkspaceCreated", 1)
	register[UserInvited](r, "UserInvited", 1)
	register[InvitationResent](r, "InvitationResent", 1)
	register[InvitationRevoked](r, "InvitationRevoked", 1)
	register[InvitationExpired](r, "InvitationExpired", 1)
	register[InvitationAccepted](r, "InvitationAccepted", 1)
	register[InvitationEmailSent](r, "InvitationEmailSent", 1)
	register[InvitationEmailFailed](r, "InvitationEmailFailed", 1)
	register[RoleChanged](r, "RoleChanged", 1)
	register[RoleGrantExpired](r, "RoleGrantExpired", 1)
	register[RoleGrantExpiryRefused](r, "RoleGrantExpiryRefused", 1)
	register[MemberRemoved](r, "MemberRemoved", 1)
	register[MemberSuspended](r, "MemberSuspended", 1)
	register[MemberReactivated](r, "MemberReactivated", 1)
	register[WorkspaceSettingsChanged](r, "WorkspaceSettingsChanged", 1)
	register[UserLoggedIn](r, "UserLoggedIn", 1)
	register[AuditDivergenceAccepted](r, "AuditDivergenceAccepted", 1)
	register[AccessReviewStarted](r, "AccessReviewStarted", 1)
	register[AccessReviewItemDecided](r, "AccessReviewItemDecided", 1)
	register[AccessReviewCompleted](r, "AccessReviewCompleted", 1)
	register[WebhookSubscribed](r, "WebhookSubscribed", 1)
	register[WebhookRemoved](r, "WebhookRemoved", 1)
	register[WebhookReplayRequested](r, "WebhookReplayRequested", 1)
	register[AccountRegistered](r, "AccountRegistered", 1)
	register[AccountDeleted](r, "AccountDeleted", 1)
}

// WorkspaceCreated opens a workspace; its owner is an active Admin at once.
type WorkspaceCreated struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	Name        string    `json:"name"`
	OwnerUserID uuid.UUID `json:"ownerUserId"`
	OwnerEmail  string    `json:"ownerEmail" personal:"OwnerUserID"`
	OwnerName   string    `json:"ownerName" personal:"OwnerUserID"`
	CreatedAt   time.Time `json:"createdAt"`
}

// UserInvited records one invitation. Escalation is true when the role
// granted ranks above the inviter's own (a Manager inviting an Admin).
// TokenHash is the only trace of the link's secret.
type UserInvited struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email" personal:"UserID"`
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
	Email        string    `json:"email" personal:"UserID"`
	Attempt      int       `json:"attempt"`
	ResentBy     uuid.UUID `json:"resentBy"`
	TokenHash    string    `json:"tokenHash"`
	ResentAt     time.Time `json:"resentAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// InvitationRevoked withdraws a pending invitation. Reason is empty for an
// ordinary revocation, ReasonAccountDeleted when the invitee's account was
// deleted.
type InvitationRevoked struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email" personal:"UserID"`
	Role         string    `json:"role"`
	Reason       string    `json:"reason,omitempty"`
}

// InvitationExpired marks an invitation whose time ran out. A resend revives it.
type InvitationExpired struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email" personal:"UserID"`
	ExpiredAt    time.Time `json:"expiredAt"`
}

// InvitationAccepted makes the invitee an active member with the invited role.
type InvitationAccepted struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email" personal:"UserID"`
	Name         string    `json:"name" personal:"UserID"`
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
// delivered after the last retry, or was refused for good. Reason is
// personal: a mail server's answer often quotes the address.
type InvitationEmailFailed struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	InvitationID uuid.UUID `json:"invitationId"`
	UserID       uuid.UUID `json:"userId"`
	Attempt      int       `json:"attempt"`
	Reason       string    `json:"reason" personal:"UserID"`
}

// RoleChanged moves a member (or a pending invitation) to another role.
// ChangedBy matters for invitations: the Admin who changed the role becomes
// the one whose right to grant it is checked at acceptance.
type RoleChanged struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email" personal:"UserID"`
	FromRole    string    `json:"fromRole"`
	ToRole      string    `json:"toRole"`
	ChangedBy   uuid.UUID `json:"changedBy"`
	// Until, when set, ends the grant: at that instant FromRole comes back
	// (RoleGrantExpired). Absent from older events, whose bytes it keeps.
	Until *time.Time `json:"until,omitempty"`
}

// RoleGrantExpired ends a temporary role (RoleChanged with Until): the
// member is back to ToRole, the role held before the grant. The system acts.
type RoleGrantExpired struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email" personal:"UserID"`
	FromRole    string    `json:"fromRole"`
	ToRole      string    `json:"toRole"`
	Until       time.Time `json:"until"`
}

// RoleGrantExpiryRefused records a temporary role that could not end: going
// back to PreviousRole would have left the workspace without an active
// Admin (Reason "last_admin"). The member keeps Role, now without an end.
type RoleGrantExpiryRefused struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email" personal:"UserID"`
	Role         string    `json:"role"`
	PreviousRole string    `json:"previousRole"`
	Until        time.Time `json:"until"`
	Reason       string    `json:"reason"`
}

// MemberRemoved revokes a member's access to this workspace only. Reason is
// empty for an ordinary removal, ReasonAccountDeleted when the member's
// account was deleted.
type MemberRemoved struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email" personal:"UserID"`
	Role        string    `json:"role"`
	Reason      string    `json:"reason,omitempty"`
}

// ReasonAccountDeleted is the Reason of a removal or revocation that an
// account's deletion caused.
const ReasonAccountDeleted = "account_deleted"

// MemberSuspended blocks a member's access but keeps the membership.
type MemberSuspended struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email" personal:"UserID"`
	Role        string    `json:"role"`
}

// MemberReactivated gives a suspended member access again.
type MemberReactivated struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email" personal:"UserID"`
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

// AuditDivergenceAccepted records that a rebuild of the audit history was
// allowed to replace the workspace's live entries with a rebuilt chain that
// differs from them from Seq on (usersd projections rebuild audit
// --accept-divergence): the events were rewritten or removed underneath, or
// the live entries changed. LiveHash and RebuiltHash are the entry's hash at
// Seq in each chain ("" where a chain has no entry there). Recorded before
// the swap, so that no such swap goes unrecorded.
type AuditDivergenceAccepted struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	Seq         int64     `json:"seq"`
	LiveHash    string    `json:"liveHash"`
	RebuiltHash string    `json:"rebuiltHash"`
}

// AccessReviewStarted opens an access review. Its population is the
// workspace's membership at this event (every member, suspended ones and
// pending invitations included): the aggregate and the read models each take
// it from their own state as of this event, so the event carries only how
// many people it holds.
type AccessReviewStarted struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	ReviewID    uuid.UUID `json:"reviewId"`
	Name        string    `json:"name"`
	Items       int       `json:"items"`
	StartedAt   time.Time `json:"startedAt"`
}

// AccessReviewItemDecided records an Admin's decision on one person of a
// review: keep, change_role (NewRole) or revoke. A change or a revocation
// is recorded, in the same append, by the ordinary event (RoleChanged,
// MemberRemoved, InvitationRevoked), whose causation is the review. Comment
// is what the Admin wrote about the person: personal to them.
type AccessReviewItemDecided struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	ReviewID    uuid.UUID `json:"reviewId"`
	UserID      uuid.UUID `json:"userId"`
	Decision    string    `json:"decision"`
	NewRole     string    `json:"newRole,omitempty"`
	Comment     string    `json:"comment,omitempty" personal:"UserID"`
}

// AccessReviewCompleted closes a review whose every item is decided; it is
// immutable afterwards. The counts are the decisions in force.
type AccessReviewCompleted struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	ReviewID    uuid.UUID `json:"reviewId"`
	Items       int       `json:"items"`
	Kept        int       `json:"kept"`
	Changed     int       `json:"changed"`
	Revoked     int       `json:"revoked"`
}

// WebhookSubscribed subscribes URL to the workspace's events of the types
// Events (or "*": all), from the next event on. The webhook's secret is
// not here: it is stored encrypted apart from the events.
type WebhookSubscribed struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	WebhookID   uuid.UUID `json:"webhookId"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
}

// WebhookRemoved ends a webhook: nothing more is delivered to it.
type WebhookRemoved struct {
	WorkspaceID uuid.UUID `json:"workspaceId"`
	WebhookID   uuid.UUID `json:"webhookId"`
	URL         string    `json:"url"`
}

// WebhookReplayRequested asks for the workspace's events after
// FromPosition (a Position's String; "0-0" from the start) and before this
// event to be delivered to the webhook again.
type WebhookReplayRequested struct {
	WorkspaceID  uuid.UUID `json:"workspaceId"`
	WebhookID    uuid.UUID `json:"webhookId"`
	FromPosition string    `json:"fromPosition"`
}

// AccountRegistered reserves an e-mail address for one user id, across all
// workspaces. It is the first event of the address's own stream.
type AccountRegistered struct {
	UserID uuid.UUID `json:"userId"`
	Email  string    `json:"email" personal:"UserID"`
}

// AccountDeleted records that an account was deleted: the person has left
// every workspace (a removal or revocation in each, recorded before this),
// and their data key is destroyed right after, which erases every personal
// value sealed for them. It is the last event of the address's stream; a
// later invitation of the same address reserves a new account.
type AccountDeleted struct {
	UserID    uuid.UUID `json:"userId"`
	DeletedAt time.Time `json:"deletedAt"`
}

// Actor is who caused an event, as they were at that moment. Email is
// personal, sealed for UserID like the events' personal fields; so is the
// request context of a person's request (eventstore's codec).
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
//
// Envelope holds the event as the domain reads it: personal values opened,
// or "" where the person was erased (their user ids are in Erased). Stored
// holds it as the store keeps it, personal values sealed (values written
// before sealing existed are plain in both): what the audit history copies,
// so that its hashes cover exactly what the events hold and never need a
// key to verify.
type RecordedEvent struct {
	Envelope
	Stored   Envelope
	Erased   []uuid.UUID
	StreamID string
	Revision uint64
	Position Position
}
