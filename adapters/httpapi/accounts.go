package httpapi

import (
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/userlist"
)

// codeAccountErased answers a deleted account's export: its data is gone
// for good (410), which "not found" would not say.
const codeAccountErased domain.Code = "account_erased"

// systemOnly refuses every caller but the platform.
func systemOnly(p principal) error {
	if !p.system {
		return newProblem(domain.CodeNotAllowed, "only the platform manages accounts")
	}
	return nil
}

// accountPath reads the platform's request about the account a path names:
// every other caller is refused, then the path's userId is read.
func accountPath(r *http.Request, p principal) (uuid.UUID, error) {
	if err := systemOnly(p); err != nil {
		return uuid.Nil, err
	}
	return pathID(r, "userId")
}

// DELETE /v1/accounts/{userId} (system only).
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, p principal) error {
	user, err := accountPath(r, p)
	if err != nil {
		return err
	}
	if err := decodeRequest(r, &emptyRequest{}, false); err != nil {
		return err
	}
	// The command finds the person's workspaces in these read models.
	if err := s.waitFor(r, projMemberships, projUserList); err != nil {
		return err
	}
	res, err := s.commands.DeleteAccount.Handle(r.Context(), commands.DeleteAccount{UserID: user, Meta: s.meta(r, p)})
	if err != nil {
		return err
	}
	return wrote(w, http.StatusOK, res.Position, struct {
		UserID   uuid.UUID `json:"userId"`
		ErasedAt time.Time `json:"erasedAt"`
		Position string    `json:"position"`
	}{res.UserID, res.ErasedAt.UTC(), res.Position.String()})
}

// GET /v1/accounts/lookup?email= (system only).
func (s *Server) lookupAccount(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := systemOnly(p); err != nil {
		return err
	}
	raw := r.URL.Query().Get("email")
	if raw == "" {
		return newProblem(domain.CodeInvalidInput, "email is required").withField("email", "want an e-mail address")
	}
	email, err := domain.NormalizeEmail(raw)
	if err != nil {
		return newProblem(domain.CodeInvalidEmail, "email is not a valid e-mail address").withField("email", "want an e-mail address")
	}
	if err := s.waitFor(r, projMemberships); err != nil {
		return err
	}
	id, found, err := s.members.AccountByEmail(r.Context(), email)
	if err != nil {
		return err
	}
	if !found {
		return newProblem(domain.CodeAccountNotFound, "no account has this address")
	}
	return writeJSON(w, http.StatusOK, struct {
		UserID uuid.UUID `json:"userId"`
	}{id})
}

// accountMembership is a workspace the person has joined, in an export.
type accountMembership struct {
	WorkspaceID   uuid.UUID     `json:"workspaceId"`
	WorkspaceName string        `json:"workspaceName"`
	Role          domain.Role   `json:"role"`
	Status        domain.Status `json:"status"`
	LastLoginAt   *time.Time    `json:"lastLoginAt"`
}

// accountInvitation is a pending invitation to the person, in an export.
type accountInvitation struct {
	WorkspaceID  uuid.UUID   `json:"workspaceId"`
	InvitationID uuid.UUID   `json:"invitationId"`
	Role         domain.Role `json:"role"`
	InvitedAt    time.Time   `json:"invitedAt"`
	InvitedBy    uuid.UUID   `json:"invitedBy"`
	ExpiresAt    time.Time   `json:"expiresAt"`
	Expired      bool        `json:"expired"`
}

// GET /v1/accounts/{userId}/export (system only): everything held about a
// person, as one document (GDPR Art. 15 and 20).
func (s *Server) exportAccount(w http.ResponseWriter, r *http.Request, p principal) error {
	user, err := accountPath(r, p)
	if err != nil {
		return err
	}
	if err := s.waitFor(r, projMemberships, projUserList, projHistory, projAudit); err != nil {
		return err
	}
	ctx := r.Context()
	acct, found, err := s.members.Account(ctx, user)
	if err != nil {
		return err
	}
	if !found {
		return newProblem(domain.CodeAccountNotFound, "no account has this id")
	}
	if acct.DeletedAt != nil {
		return newProblem(codeAccountErased, "this account was deleted and its personal data erased")
	}
	joined, err := s.members.ForUser(ctx, user)
	if err != nil {
		return err
	}
	rows, err := s.users.Person(ctx, user)
	if err != nil {
		return err
	}
	byWS := make(map[uuid.UUID]userlist.PersonRow, len(rows))
	var name *string
	invitations := []accountInvitation{}
	for _, row := range rows {
		byWS[row.WorkspaceID] = row
		if name == nil && row.Name != nil {
			name = row.Name
		}
		if inv := row.Invitation; inv != nil {
			invitations = append(invitations, accountInvitation{
				WorkspaceID: row.WorkspaceID, InvitationID: inv.ID, Role: row.Role,
				InvitedAt: inv.InvitedAt, InvitedBy: inv.InvitedBy, ExpiresAt: inv.ExpiresAt, Expired: inv.Expired,
			})
		}
	}
	memberships := make([]accountMembership, 0, len(joined))
	for _, m := range joined {
		memberships = append(memberships, accountMembership{
			WorkspaceID: m.WorkspaceID, WorkspaceName: m.Name, Role: m.Role, Status: m.Status,
			LastLoginAt: byWS[m.WorkspaceID].LastLoginAt,
		})
	}
	entries := []audit.Entry{}
	if err := audit.ForPerson(ctx, s.cfg.DB, s.cfg.Keys, user, func(e audit.Entry) error {
		entries = append(entries, e)
		return nil
	}); err != nil {
		return err
	}
	// Every change the history shows has an audit entry about the person,
	// so their entries name every workspace whose list they were ever in.
	var touched []uuid.UUID
	for _, e := range entries {
		if !slices.Contains(touched, e.WorkspaceID) {
			touched = append(touched, e.WorkspaceID)
		}
	}
	past, err := s.history.ForPerson(ctx, user, touched)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		UserID      uuid.UUID           `json:"userId"`
		Email       string              `json:"email"`
		Name        *string             `json:"name"`
		Memberships []accountMembership `json:"memberships"`
		Invitations []accountInvitation `json:"invitations"`
		// History is the person's role and status through time in every
		// workspace they were ever in, left ones included.
		History      []history.WorkspaceHistory `json:"history"`
		AuditEntries []audit.Entry              `json:"auditEntries"`
	}{user, acct.Email, name, memberships, invitations, past, entries})
}
