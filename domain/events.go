package domain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is a fact the domain recorded. Each event is a plain struct of
// primitive fields with a stable type name, so that an old event always
// decodes; a breaking change adds a new schema version and an upcaster in
// DecodeEvent instead of editing a struct.
type Event interface {
	EventType() string
}

// Event type names. They are stored with every event: never rename one.
const (
	TypeWorkspaceCreated         = "WorkspaceCreated"
	TypeUserInvited              = "UserInvited"
	TypeInvitationResent         = "InvitationResent"
	TypeInvitationRevoked        = "InvitationRevoked"
	TypeInvitationExpired        = "InvitationExpired"
	TypeInvitationAccepted       = "InvitationAccepted"
	TypeInvitationEmailSent      = "InvitationEmailSent"
	TypeInvitationEmailFailed    = "InvitationEmailFailed"
	TypeRoleChanged              = "RoleChanged"
	TypeMemberRemoved            = "MemberRemoved"
	TypeMemberSuspended          = "MemberSuspended"
	TypeMemberReactivated        = "MemberReactivated"
	TypeWorkspaceSettingsChanged = "WorkspaceSettingsChanged"
	TypeUserLoggedIn             = "UserLoggedIn"
	TypeAccountRegistered        = "AccountRegistered"
)

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

func (WorkspaceCreated) EventType() string         { return TypeWorkspaceCreated }
func (UserInvited) EventType() string              { return TypeUserInvited }
func (InvitationResent) EventType() string         { return TypeInvitationResent }
func (InvitationRevoked) EventType() string        { return TypeInvitationRevoked }
func (InvitationExpired) EventType() string        { return TypeInvitationExpired }
func (InvitationAccepted) EventType() string       { return TypeInvitationAccepted }
func (InvitationEmailSent) EventType() string      { return TypeInvitationEmailSent }
func (InvitationEmailFailed) EventType() string    { return TypeInvitationEmailFailed }
func (RoleChanged) EventType() string              { return TypeRoleChanged }
func (MemberRemoved) EventType() string            { return TypeMemberRemoved }
func (MemberSuspended) EventType() string          { return TypeMemberSuspended }
func (MemberReactivated) EventType() string        { return TypeMemberReactivated }
func (WorkspaceSettingsChanged) EventType() string { return TypeWorkspaceSettingsChanged }
func (UserLoggedIn) EventType() string             { return TypeUserLoggedIn }
func (AccountRegistered) EventType() string        { return TypeAccountRegistered }

// SchemaVersion is the version every event type is written with today.
const SchemaVersion = 1

// eventTypes is the one registry of stored event names: name to a new, empty
// value of the current struct. Adding an event means adding a line here.
func eventTypes() map[string]func() Event {
	return map[string]func() Event{
		TypeWorkspaceCreated:         func() Event { return &WorkspaceCreated{} },
		TypeUserInvited:              func() Event { return &UserInvited{} },
		TypeInvitationResent:         func() Event { return &InvitationResent{} },
		TypeInvitationRevoked:        func() Event { return &InvitationRevoked{} },
		TypeInvitationExpired:        func() Event { return &InvitationExpired{} },
		TypeInvitationAccepted:       func() Event { return &InvitationAccepted{} },
		TypeInvitationEmailSent:      func() Event { return &InvitationEmailSent{} },
		TypeInvitationEmailFailed:    func() Event { return &InvitationEmailFailed{} },
		TypeRoleChanged:              func() Event { return &RoleChanged{} },
		TypeMemberRemoved:            func() Event { return &MemberRemoved{} },
		TypeMemberSuspended:          func() Event { return &MemberSuspended{} },
		TypeMemberReactivated:        func() Event { return &MemberReactivated{} },
		TypeWorkspaceSettingsChanged: func() Event { return &WorkspaceSettingsChanged{} },
		TypeUserLoggedIn:             func() Event { return &UserLoggedIn{} },
		TypeAccountRegistered:        func() Event { return &AccountRegistered{} },
	}
}

var registry = eventTypes()

// EventTypeNames lists every registered event type name.
func EventTypeNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	return names
}

// EncodeEvent serialises an event for storage.
func EncodeEvent(e Event) ([]byte, error) {
	if _, ok := registry[e.EventType()]; !ok {
		return nil, fmt.Errorf("encode %s: event type not registered", e.EventType())
	}
	return json.Marshal(e)
}

// DecodeEvent turns stored data back into the current struct of its type.
// Versions older than SchemaVersion go through their upcaster here.
func DecodeEvent(name string, version int, data []byte) (Event, error) {
	newEvent, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("decode %s: unknown event type", name)
	}
	if version < 1 {
		return nil, fmt.Errorf("decode %s: schema version %d is not valid", name, version)
	}
	if version > SchemaVersion {
		return nil, fmt.Errorf("decode %s: schema version %d is newer than this build knows (%d)", name, version, SchemaVersion)
	}
	p := newEvent()
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", name, version, err)
	}
	return deref(p), nil
}

// deref returns the struct value behind the pointer DecodeEvent filled, so
// decoded events are the same values the aggregate recorded.
func deref(p Event) Event {
	switch e := p.(type) {
	case *WorkspaceCreated:
		return *e
	case *UserInvited:
		return *e
	case *InvitationResent:
		return *e
	case *InvitationRevoked:
		return *e
	case *InvitationExpired:
		return *e
	case *InvitationAccepted:
		return *e
	case *InvitationEmailSent:
		return *e
	case *InvitationEmailFailed:
		return *e
	case *RoleChanged:
		return *e
	case *MemberRemoved:
		return *e
	case *MemberSuspended:
		return *e
	case *MemberReactivated:
		return *e
	case *WorkspaceSettingsChanged:
		return *e
	case *UserLoggedIn:
		return *e
	case *AccountRegistered:
		return *e
	}
	return p
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
