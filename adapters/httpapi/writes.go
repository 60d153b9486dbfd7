package httpapi

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

type positionResponse struct {
	Position string `json:"position"`
}

// POST /v1/workspaces (system only).
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, p principal) error {
	if !p.system {
		return newProblem(domain.CodeNotAllowed, "only the platform creates workspaces")
	}
	var req createWorkspaceRequest
	if err := decodeRequest(r, &req, true); err != nil {
		return err
	}
	res, err := s.commands.CreateWorkspace.Handle(r.Context(), commands.CreateWorkspace{
		Name: req.Name, OwnerEmail: req.Owner.Email, OwnerName: req.Owner.Name, Meta: s.meta(r, p),
	})
	if err != nil {
		return withFields(err, fields{"name": "name", "ownerName": "owner.name", "ownerEmail": "owner.email"})
	}
	return wrote(w, http.StatusCreated, res.Position, struct {
		WorkspaceID uuid.UUID `json:"workspaceId"`
		OwnerUserID uuid.UUID `json:"ownerUserId"`
		Position    string    `json:"position"`
	}{res.WorkspaceID, res.OwnerUserID, res.Position.String()})
}

type inviteResult struct {
	Email        string         `json:"email"`
	Outcome      domain.Outcome `json:"outcome"`
	UserID       *uuid.UUID     `json:"userId,omitempty"`
	InvitationID *uuid.UUID     `json:"invitationId,omitempty"`
	Detail       string         `json:"detail,omitempty"`
}

func optID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// POST /v1/workspaces/{ws}/invitations (Admin, Manager).
func (s *Server) inviteUsers(w http.ResponseWriter, r *http.Request, p principal) error {
	var req inviteRequest
	ws, err := workspaceRequest(r, p, &req)
	if err != nil {
		return err
	}
	res, err := s.commands.InviteUsers.Handle(r.Context(), commands.InviteUsers{
		WorkspaceID: ws, Emails: req.Emails, Role: *req.Role, Meta: s.meta(r, p),
	})
	if err != nil {
		return withFields(err, fields{"role": "role", "emails": "emails"})
	}
	out := make([]inviteResult, len(res.Results))
	var links []InvitationLink
	for i, x := range res.Results {
		out[i] = inviteResult{Email: x.Email, Outcome: x.Outcome, UserID: optID(x.UserID), InvitationID: optID(x.InvitationID), Detail: x.Detail}
		if x.Token != "" {
			links = append(links, InvitationLink{WorkspaceID: ws, InvitationID: x.InvitationID, UserID: x.UserID, Email: x.Email, Token: x.Token})
		}
	}
	s.deliver(r, links)
	return wrote(w, http.StatusOK, res.Position, struct {
		Results  []inviteResult `json:"results"`
		Position string         `json:"position"`
	}{out, res.Position.String()})
}

func (s *Server) deliver(r *http.Request, links []InvitationLink) {
	if len(links) == 0 {
		return
	}
	if s.cfg.Links == nil {
		return
	}
	s.cfg.Links.Deliver(r.Context(), links)
}

// workspaceRequest reads a member's command on a workspace: the platform's
// token is refused, then the path's workspace is read and the body into req.
func workspaceRequest(r *http.Request, p principal, req checked) (uuid.UUID, error) {
	if err := asMember(p); err != nil {
		return uuid.Nil, err
	}
	ws, err := pathID(r, "ws")
	if err != nil {
		return uuid.Nil, err
	}
	return ws, decodeRequest(r, req, true)
}

// pathIDs reads the workspace and the id a path names under name: a
// member's userId, a review's id, a webhook's webhookId.
func pathIDs(r *http.Request, name string) (ws, id uuid.UUID, err error) {
	if ws, err = pathID(r, "ws"); err != nil {
		return
	}
	id, err = pathID(r, name)
	return
}

// commandPath reads a member's command on what a path names under name:
// the platform's token is refused, then the path is read.
func commandPath(r *http.Request, p principal, name string) (ws, id uuid.UUID, err error) {
	if err = asMember(p); err != nil {
		return
	}
	return pathIDs(r, name)
}

// pathRequest reads a member's command on what a path names under name, as
// commandPath does, then the body, which only a required one must hold,
// into req.
func pathRequest(r *http.Request, p principal, name string, req checked, required bool) (ws, id uuid.UUID, err error) {
	if ws, id, err = commandPath(r, p, name); err != nil {
		return
	}
	err = decodeRequest(r, req, required)
	return
}

// bodilessWrite serves a member's command that takes no body on what a
// path names under name (remove, suspend, reactivate a member; complete a
// review; remove a webhook): h runs the command that command makes of the
// path, and the answer is its position.
func bodilessWrite[C any](s *Server, w http.ResponseWriter, r *http.Request, p principal, name string, h commands.Handler[C, domain.Position], command func(ws, id uuid.UUID, m commands.Meta) C) error {
	ws, id, err := pathRequest(r, p, name, &emptyRequest{}, false)
	if err != nil {
		return err
	}
	pos, err := h.Handle(r.Context(), command(ws, id, s.meta(r, p)))
	if err != nil {
		return err
	}
	return wrote(w, http.StatusOK, pos, positionResponse{pos.String()})
}

// PUT /v1/workspaces/{ws}/users/{userId}/role (Admin).
func (s *Server) changeUserRole(w http.ResponseWriter, r *http.Request, p principal) error {
	var req changeRoleRequest
	ws, user, err := pathRequest(r, p, "userId", &req, true)
	if err != nil {
		return err
	}
	role, err := domain.ParseRole(*req.Role)
	if err != nil {
		return withFields(err, fields{"role": "role"})
	}
	var until time.Time
	if req.Until != nil {
		until, err = time.Parse(time.RFC3339Nano, *req.Until)
		if err != nil {
			return newProblem(domain.CodeInvalidInput, "until must be an RFC 3339 time such as 2024-05-01T00:00:00Z").
				withField("until", "want an RFC 3339 time")
		}
	}
	pos, err := s.commands.ChangeRole.Handle(r.Context(), commands.ChangeRole{
		WorkspaceID: ws, UserID: user, Role: string(role), Until: until, Meta: s.meta(r, p),
	})
	if err != nil {
		return withFields(err, fields{"until": "until"})
	}
	return wrote(w, http.StatusOK, pos, struct {
		UserID   uuid.UUID   `json:"userId"`
		Role     domain.Role `json:"role"`
		Position string      `json:"position"`
	}{user, role, pos.String()})
}

// DELETE /v1/workspaces/{ws}/users/{userId}: removes a member (Admin) or
// revokes a pending invitation (Admin, Manager).
func (s *Server) removeUser(w http.ResponseWriter, r *http.Request, p principal) error {
	return bodilessWrite(s, w, r, p, "userId", s.commands.RemoveUser, func(ws, user uuid.UUID, m commands.Meta) commands.RemoveUser {
		return commands.RemoveUser{WorkspaceID: ws, UserID: user, Meta: m}
	})
}

// POST /v1/workspaces/{ws}/users/{userId}/suspend (Admin).
func (s *Server) suspendUser(w http.ResponseWriter, r *http.Request, p principal) error {
	return bodilessWrite(s, w, r, p, "userId", s.commands.SuspendUser, func(ws, user uuid.UUID, m commands.Meta) commands.SuspendUser {
		return commands.SuspendUser{WorkspaceID: ws, UserID: user, Meta: m}
	})
}

// POST /v1/workspaces/{ws}/users/{userId}/reactivate (Admin).
func (s *Server) reactivateUser(w http.ResponseWriter, r *http.Request, p principal) error {
	return bodilessWrite(s, w, r, p, "userId", s.commands.ReactivateUser, func(ws, user uuid.UUID, m commands.Meta) commands.ReactivateUser {
		return commands.ReactivateUser{WorkspaceID: ws, UserID: user, Meta: m}
	})
}

// POST /v1/workspaces/{ws}/users/{userId}/invitation/resend (Admin,
// Manager): a new link; the old one dies.
func (s *Server) resendInvitation(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, user, err := pathRequest(r, p, "userId", &emptyRequest{}, false)
	if err != nil {
		return err
	}
	res, err := s.commands.ResendInvitation.Handle(r.Context(), commands.ResendInvitation{WorkspaceID: ws, UserID: user, Meta: s.meta(r, p)})
	if err != nil {
		return err
	}
	link := InvitationLink{WorkspaceID: ws, InvitationID: res.InvitationID, UserID: user, Email: string(res.Email), Token: res.Token, Resend: true}
	s.deliver(r, []InvitationLink{link})
	return wrote(w, http.StatusAccepted, res.Position, struct {
		InvitationID uuid.UUID `json:"invitationId"`
		Position     string    `json:"position"`
	}{res.InvitationID, res.Position.String()})
}

// PUT /v1/workspaces/{ws}/settings (Admin).
func (s *Server) updateSettings(w http.ResponseWriter, r *http.Request, p principal) error {
	var req settingsRequest
	ws, err := workspaceRequest(r, p, &req)
	if err != nil {
		return err
	}
	pos, err := s.commands.UpdateSettings.Handle(r.Context(), commands.UpdateSettings{WorkspaceID: ws, ManagersMayGrantAdmin: req.ManagersMayGrantAdmin, Meta: s.meta(r, p)})
	if err != nil {
		return err
	}
	return wrote(w, http.StatusOK, pos, struct {
		ManagersMayGrantAdmin bool   `json:"managersMayGrantAdmin"`
		Position              string `json:"position"`
	}{*req.ManagersMayGrantAdmin, pos.String()})
}

// POST /v1/workspaces/{ws}/logins: the member's own login, or, for the
// platform, anyone's ({"userId"}). 204 with the position in X-Position.
func (s *Server) recordLogin(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, err := pathID(r, "ws")
	if err != nil {
		return err
	}
	var req loginRequest
	if err := decodeRequest(r, &req, false); err != nil {
		return err
	}
	user := p.userID
	switch {
	case req.UserID != nil:
		id, err := uuid.Parse(*req.UserID)
		if err != nil || len(*req.UserID) != 36 {
			return newProblem(domain.CodeInvalidInput, "userId must be a UUID").withField("userId", "want a UUID")
		}
		user = id
	case p.system:
		return missing("userId")
	}
	pos, err := s.commands.RecordLogin.Handle(r.Context(), commands.RecordLogin{WorkspaceID: ws, UserID: user, Meta: s.meta(r, p)})
	if err != nil {
		return err
	}
	return wrote(w, http.StatusNoContent, pos, nil)
}

// POST /v1/invitations/lookup: what the accept page shows. The token, the
// only credential, travels in the body.
func (s *Server) lookupInvitation(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decodeRequest(r, &req, true); err != nil {
		return err
	}
	v, err := s.queries.LookupInvitation.Handle(r.Context(), commands.LookupInvitation{Token: *req.Token})
	if err != nil {
		return withFields(err, fields{"token": "token"})
	}
	return writeJSON(w, http.StatusOK, struct {
		WorkspaceName string      `json:"workspaceName"`
		Email         string      `json:"email"`
		Role          domain.Role `json:"role"`
		ExpiresAt     time.Time   `json:"expiresAt"`
	}{v.WorkspaceName, string(v.Email), v.Role, v.Invitation.ExpiresAt})
}

// POST /v1/invitations/accept: the invitee joins, naming themselves.
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) error {
	var req acceptRequest
	if err := decodeRequest(r, &req, true); err != nil {
		return err
	}
	res, err := s.commands.AcceptInvitation.Handle(r.Context(), commands.AcceptInvitation{Token: *req.Token, Name: req.Name, Meta: s.meta(r, principal{})})
	if err != nil {
		return withFields(err, fields{"token": "token", "name": "name"})
	}
	return wrote(w, http.StatusOK, res.Position, struct {
		WorkspaceID uuid.UUID   `json:"workspaceId"`
		UserID      uuid.UUID   `json:"userId"`
		Role        domain.Role `json:"role"`
		Position    string      `json:"position"`
	}{res.WorkspaceID, res.UserID, res.Role, res.Position.String()})
}
