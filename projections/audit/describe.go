package audit

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections"
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
	// purge, set, is the person whose account was deleted: no entry (the
	// event belongs to no workspace), their remembered addresses go.
	purge uuid.UUID
}

// handling: every workspace event gets an entry; AccountRegistered belongs
// to no workspace. AccountDeleted gets none either, but is applied: it
// purges the person's remembered addresses.
var handling = projections.ApplyAllBut(domain.AccountRegistered{})

// describe maps an event the projection applies to its entry. A type
// without a case is an error, not a silent gap in a compliance record
// (TestEveryAppliedEventIsDescribed finds one before it runs).
func describe(ev domain.Event) (description, error) {
	d, ok := describeEvent(ev)
	if !ok {
		return description{}, fmt.Errorf("event type %s (%T) has no audit description", domain.EventName(ev), ev)
	}
	d.workspaceID, _ = domain.WorkspaceOf(ev)
	return d, nil
}

func describeEvent(ev domain.Event) (description, bool) {
	switch e := ev.(type) {
	case domain.WorkspaceCreated:
		return about(e.OwnerUserID, e.OwnerEmail,
			str("name", e.Name), str("ownerName", e.OwnerName), str("role", string(domain.RoleAdmin))), true
	case domain.UserInvited:
		// TokenHash is deliberately left out: the audit history is readable
		// by every Monitor and exported to auditors.
		return about(e.UserID, e.Email,
			str("invitationId", e.InvitationID.String()), str("role", e.Role), str("inviterRole", e.InviterRole),
			flag("escalation", e.Escalation), str("expiresAt", formatTime(e.ExpiresAt))), true
	case domain.InvitationResent:
		return about(e.UserID, e.Email,
			str("invitationId", e.InvitationID.String()), integer("attempt", e.Attempt), str("expiresAt", formatTime(e.ExpiresAt))), true
	case domain.InvitationRevoked:
		// reason only when set, so that entries from before it existed
		// keep their content and hashes.
		return about(e.UserID, e.Email,
			withReason(e.Reason, str("invitationId", e.InvitationID.String()), str("role", e.Role))...), true
	case domain.InvitationExpired:
		return about(e.UserID, e.Email, str("invitationId", e.InvitationID.String()), str("expiredAt", formatTime(e.ExpiredAt))), true
	case domain.InvitationAccepted:
		return about(e.UserID, e.Email,
			str("invitationId", e.InvitationID.String()), str("role", e.Role), str("name", e.Name)), true
	case domain.InvitationEmailSent:
		return aboutKnown(e.UserID, str("invitationId", e.InvitationID.String()), integer("attempt", e.Attempt)), true
	case domain.InvitationEmailFailed:
		return aboutKnown(e.UserID,
			str("invitationId", e.InvitationID.String()), integer("attempt", e.Attempt), str("reason", e.Reason)), true
	case domain.RoleChanged:
		// until only when set, so that entries of older events keep their
		// content and hashes.
		details := []field{str("fromRole", e.FromRole), str("toRole", e.ToRole)}
		if e.Until != nil {
			details = append(details, str("until", formatTime(*e.Until)))
		}
		return about(e.UserID, e.Email, details...), true
	case domain.RoleGrantExpired:
		return about(e.UserID, e.Email,
			str("fromRole", e.FromRole), str("toRole", e.ToRole), str("until", formatTime(e.Until))), true
	case domain.RoleGrantExpiryRefused:
		// The role stays; reason says why the previous one did not come back.
		return about(e.UserID, e.Email,
			str("role", e.Role), str("previousRole", e.PreviousRole), str("until", formatTime(e.Until)),
			str("reason", e.Reason)), true
	case domain.MemberRemoved:
		return about(e.UserID, e.Email, withReason(e.Reason, str("role", e.Role))...), true
	case domain.MemberSuspended:
		return about(e.UserID, e.Email, str("role", e.Role)), true
	case domain.MemberReactivated:
		return about(e.UserID, e.Email, str("role", e.Role)), true
	case domain.WorkspaceSettingsChanged:
		return description{details: []field{flag("managersMayGrantAdmin", e.ManagersMayGrantAdmin)}}, true
	case domain.AuditDivergenceAccepted:
		// About the history itself, no user: from which seq the entries
		// were replaced, and both hashes there.
		return description{details: []field{
			bigint("seq", e.Seq), str("liveHash", e.LiveHash), str("rebuiltHash", e.RebuiltHash),
		}}, true
	case domain.WebhookSubscribed:
		// The URL without its query: a receiver's token may sit there,
		// and every Monitor reads the history.
		return description{details: []field{
			str("webhookId", e.WebhookID.String()), str("url", withoutQuery(e.URL)), str("events", strings.Join(e.Events, ",")),
		}}, true
	case domain.WebhookRemoved:
		return description{details: []field{str("webhookId", e.WebhookID.String()), str("url", withoutQuery(e.URL))}}, true
	case domain.WebhookReplayRequested:
		return description{details: []field{str("webhookId", e.WebhookID.String()), str("fromPosition", e.FromPosition)}}, true
	case domain.UserLoggedIn:
		return aboutKnown(e.UserID, str("loggedInAt", formatTime(e.LoggedInAt))), true
	case domain.AccessReviewStarted:
		return description{details: []field{
			str("reviewId", e.ReviewID.String()), str("name", e.Name), integer("items", e.Items),
		}}, true
	case domain.AccessReviewItemDecided:
		// newRole and comment only when set.
		details := []field{str("reviewId", e.ReviewID.String()), str("decision", e.Decision)}
		if e.NewRole != "" {
			details = append(details, str("newRole", e.NewRole))
		}
		if e.Comment != "" {
			details = append(details, str("comment", e.Comment))
		}
		return aboutKnown(e.UserID, details...), true
	case domain.AccessReviewCompleted:
		return description{details: []field{
			str("reviewId", e.ReviewID.String()), integer("items", e.Items),
			integer("kept", e.Kept), integer("changed", e.Changed), integer("revoked", e.Revoked),
		}}, true
	case domain.AccountDeleted:
		return description{purge: e.UserID}, true
	}
	return description{}, false
}

// withoutQuery cuts a URL's query off ("?..." and what follows).
func withoutQuery(url string) string {
	if i := strings.IndexByte(url, '?'); i >= 0 {
		return url[:i] + "?…"
	}
	return url
}

// withReason appends a "reason" detail to details when reason is set.
func withReason(reason string, details ...field) []field {
	if reason != "" {
		details = append(details, str("reason", reason))
	}
	return details
}

// personalDetails names, per action, the details that hold a personal
// value of the entry's target (sealed for them, as in the event):
// what display opens, and shows as null once they are erased.
// TestPersonalDetailsAreTheEventsPersonalValues keeps it true to the
// events' personal fields.
var personalDetails = map[string][]string{
	"WorkspaceCreated":      {"ownerName"},
	"InvitationAccepted":    {"name"},
	"InvitationEmailFailed": {"reason"},
	// What an Admin wrote about the person under review.
	"AccessReviewItemDecided": {"comment"},
}

// about describes an event about user, who has that address.
func about(user uuid.UUID, email string, details ...field) description {
	return description{targetID: user, targetEmail: email, details: details}
}

// aboutKnown describes an event about user that carries no address: the
// entry gets the last one the projection saw.
func aboutKnown(user uuid.UUID, details ...field) description {
	return description{targetID: user, lookup: true, details: details}
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
