package audit

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
)

// description is what an event contributes to its audit entry beyond the
// metadata every event has.
type description struct {
	workspaceID uuid.UUID
	// targetID is the user the event is about; uuid.Nil: none (settings).
	targetID uuid.UUID
	// targetEmail is the target's address as the event carries it; "" with
	// lookup set: the event carries none, use the last one we saw.
	targetEmail string
	lookup      bool
	details     []field
}

// describe maps an event to its entry. ok is false for events that belong
// to no workspace (AccountRegistered), which the audit history skips. An
// event type this package does not know is an error, not a silent gap in a
// compliance record: a new event type needs a line here.
func describe(ev domain.Event) (d description, ok bool, err error) {
	switch e := ev.(type) {
	case domain.WorkspaceCreated:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.OwnerUserID,
			targetEmail: e.OwnerEmail,
			details: []field{
				str("name", e.Name),
				str("ownerName", e.OwnerName),
				str("role", string(domain.RoleAdmin)),
			},
		}, true, nil
	case domain.UserInvited:
		// TokenHash is deliberately left out: the audit history is readable
		// by every Monitor and exported to auditors.
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details: []field{
				str("invitationId", e.InvitationID.String()),
				str("role", e.Role),
				str("inviterRole", e.InviterRole),
				flag("escalation", e.Escalation),
				str("expiresAt", formatTime(e.ExpiresAt)),
			},
		}, true, nil
	case domain.InvitationResent:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details: []field{
				str("invitationId", e.InvitationID.String()),
				integer("attempt", e.Attempt),
				str("expiresAt", formatTime(e.ExpiresAt)),
			},
		}, true, nil
	case domain.InvitationRevoked:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details:     []field{str("invitationId", e.InvitationID.String()), str("role", e.Role)},
		}, true, nil
	case domain.InvitationExpired:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details:     []field{str("invitationId", e.InvitationID.String()), str("expiredAt", formatTime(e.ExpiredAt))},
		}, true, nil
	case domain.InvitationAccepted:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details: []field{
				str("invitationId", e.InvitationID.String()),
				str("role", e.Role),
				str("name", e.Name),
			},
		}, true, nil
	case domain.InvitationEmailSent:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			lookup:      true,
			details:     []field{str("invitationId", e.InvitationID.String()), integer("attempt", e.Attempt)},
		}, true, nil
	case domain.InvitationEmailFailed:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			lookup:      true,
			details: []field{
				str("invitationId", e.InvitationID.String()),
				integer("attempt", e.Attempt),
				str("reason", e.Reason),
			},
		}, true, nil
	case domain.RoleChanged:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			targetEmail: e.Email,
			details:     []field{str("fromRole", e.FromRole), str("toRole", e.ToRole)},
		}, true, nil
	case domain.MemberRemoved:
		return memberChange(e.WorkspaceID, e.UserID, e.Email, e.Role), true, nil
	case domain.MemberSuspended:
		return memberChange(e.WorkspaceID, e.UserID, e.Email, e.Role), true, nil
	case domain.MemberReactivated:
		return memberChange(e.WorkspaceID, e.UserID, e.Email, e.Role), true, nil
	case domain.WorkspaceSettingsChanged:
		return description{
			workspaceID: e.WorkspaceID,
			details:     []field{flag("managersMayGrantAdmin", e.ManagersMayGrantAdmin)},
		}, true, nil
	case domain.UserLoggedIn:
		return description{
			workspaceID: e.WorkspaceID,
			targetID:    e.UserID,
			lookup:      true,
			details:     []field{str("loggedInAt", formatTime(e.LoggedInAt))},
		}, true, nil
	case domain.AccountRegistered:
		return description{}, false, nil
	case nil:
		return description{}, false, fmt.Errorf("no event")
	}
	return description{}, false, fmt.Errorf("event type %s (%T) is not known to the audit projection", domain.EventName(ev), ev)
}

func memberChange(ws, user uuid.UUID, email, role string) description {
	return description{
		workspaceID: ws,
		targetID:    user,
		targetEmail: email,
		details:     []field{str("role", role)},
	}
}

// formatTime renders a time inside details: UTC, RFC 3339 with as many
// fractional digits as needed.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// clean makes s storable in a PostgreSQL text or jsonb value, which refuse
// NUL characters and invalid UTF-8: both become U+FFFD. An event carrying
// either would otherwise stop the projection for good.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
