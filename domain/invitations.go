package domain

import (
	"time"

	"github.com/google/uuid"
)

// Invitation is a pending invitation's state.
type Invitation struct {
	ID          uuid.UUID
	InvitedBy   uuid.UUID
	InviterRole Role
	// GrantedBy is whose right to grant Role is checked at acceptance: the
	// inviter, or the Admin who changed the invitation's role since.
	GrantedBy uuid.UUID
	InvitedAt time.Time
	ExpiresAt time.Time
	Attempt   int
	Expired   bool
	tokenHash string
	// oldHashes are the hashes of links replaced by resends: such a link is
	// told it was replaced, while a forged one learns nothing.
	oldHashes []string
	// outcomeRecorded is true once the current attempt's e-mail outcome
	// (sent or failed) is recorded: the mailer may report it twice.
	outcomeRecorded bool
}

// closedInvitation remembers why an invitation's link no longer works.
type closedInvitation struct {
	err       *Error
	email     Email
	tokenHash string
}

// InviteLimits cap how many invitations and resends a workspace and one
// inviter may send in a rolling day. Zero means no cap.
type InviteLimits struct {
	PerWorkspace int
	PerInviter   int
}

// InviteBatch is everything Invite needs, decided outside: who acts, the
// parsed addresses, the user id of every address that has no membership
// here, and the sources of new ids and secrets.
type InviteBatch struct {
	Actor   uuid.UUID
	Role    Role
	Entries []BatchEntry
	UserIDs map[Email]uuid.UUID
	Now     time.Time
	TTL     time.Duration
	Limits  InviteLimits
	// NewInvitation returns a fresh invitation id and link secret.
	NewInvitation func() (uuid.UUID, []byte)
}

// NeedAccounts lists the valid addresses of a batch that have no membership
// here, so the caller can resolve their user ids before Invite.
func (w *Workspace) NeedAccounts(entries []BatchEntry) []Email {
	var out []Email
	for _, e := range entries {
		if _, ok := w.byEmail[e.Email]; e.Valid() && !ok {
			out = append(out, e.Email)
		}
	}
	return out
}

// Invite invites every valid address of the batch with one role and answers
// one result per entry. An address whose invitation expired is invited anew.
func (w *Workspace) Invite(b InviteBatch) ([]InviteResult, error) {
	p, err := w.planInvite(b, true)
	if err != nil {
		return nil, err
	}
	results, invite, actor, escalation := p.results, p.invite, p.actor, p.escalation
	for _, i := range invite {
		r := &results[i]
		invID, secret := b.NewInvitation()
		token := InvitationToken{WorkspaceID: w.id, InvitationID: invID, Secret: secret}
		email := Email(r.Email)
		r.Outcome, r.InvitationID, r.Token = OutcomeInvited, invID, token.String()
		w.record(UserInvited{
			WorkspaceID: w.id, InvitationID: invID, UserID: r.UserID, Email: r.Email,
			Role: string(b.Role), InvitedBy: actor.UserID, InviterRole: string(actor.Role),
			Escalation: escalation, TokenHash: token.hash(email),
			InvitedAt: b.Now, ExpiresAt: b.Now.Add(b.TTL),
		})
	}
	return results, nil
}

// CheckInvite answers the error Invite would give for b, before the caller
// reserves accounts for the batch's new addresses (b.UserIDs may be empty),
// so that a refused batch writes nothing at all.
func (w *Workspace) CheckInvite(b InviteBatch) error {
	_, err := w.planInvite(b, false)
	return err
}

type invitePlan struct {
	results    []InviteResult
	invite     []int // indexes of results to invite
	actor      *Member
	escalation bool
}

// planInvite checks a batch and sorts its entries; with needIDs it also
// requires the user id of every new address.
func (w *Workspace) planInvite(b InviteBatch, needIDs bool) (invitePlan, error) {
	actor, err := w.authorize(b.Actor, PermInviteUsers)
	if err != nil {
		return invitePlan{}, err
	}
	if !b.Role.Valid() {
		return invitePlan{}, fieldError("role", CodeInvalidRole, "unknown role %q", b.Role)
	}
	p := invitePlan{actor: actor, escalation: b.Role.Above(actor.Role), results: make([]InviteResult, len(b.Entries))}
	if p.escalation && !w.settings.ManagersMayGrantAdmin {
		return invitePlan{}, newError(CodeNotAllowed, "this workspace does not let a %s grant the %s role", actor.Role, b.Role)
	}
	if b.TTL <= 0 {
		return invitePlan{}, newError(CodeInvalidInput, "the invitation lifetime must be positive")
	}
	for i, e := range b.Entries {
		r := &p.results[i]
		r.Email = string(e.Email)
		if !e.Valid() {
			r.Email, r.Outcome, r.Detail = e.Input, OutcomeInvalid, e.Problem
			continue
		}
		m, ok := w.members[w.byEmail[e.Email]]
		if id := b.UserIDs[e.Email]; !ok && id != uuid.Nil {
			// The account of a member stored under another spelling of
			// the address is that member, never a second membership.
			m, ok = w.members[id]
		}
		switch {
		case !ok:
			id, found := b.UserIDs[e.Email]
			if needIDs && (!found || id == uuid.Nil) {
				return invitePlan{}, newError(CodeInvalidInput, "no account was resolved for an address of the batch")
			}
			r.UserID = id
			p.invite = append(p.invite, i)
		case m.Status != StatusInvited:
			r.UserID, r.Outcome, r.Detail = m.UserID, OutcomeAlreadyMember, "already a member of this workspace"
		case m.Invitation.expiredAt(b.Now):
			r.UserID = m.UserID
			p.invite = append(p.invite, i)
		default:
			r.UserID, r.InvitationID, r.Outcome = m.UserID, m.Invitation.ID, OutcomeAlreadyInvited
			r.Detail = "already invited; use resend to send the e-mail again"
		}
	}
	if err := w.invites.check(b.Actor, len(p.invite), b.Now, b.Limits); err != nil {
		return invitePlan{}, err
	}
	return p, nil
}

func (inv *Invitation) expiredAt(now time.Time) bool {
	return inv.Expired || !now.Before(inv.ExpiresAt)
}

// Resend gives a pending invitation a new link (the old one dies), a new
// validity and a new e-mail, expired or not. It answers the invitation's id
// and the new token.
func (w *Workspace) Resend(actor, userID uuid.UUID, secret []byte, now time.Time, ttl time.Duration, limits InviteLimits) (uuid.UUID, string, error) {
	resender, err := w.authorize(actor, PermInviteUsers)
	if err != nil {
		return uuid.Nil, "", err
	}
	m, err := w.pendingInvitation(userID)
	if err != nil {
		return uuid.Nil, "", err
	}
	if m.Role.Above(resender.Role) && !w.settings.ManagersMayGrantAdmin {
		// Sending the link again would hand out a role the resender may
		// not grant in this workspace.
		return uuid.Nil, "", newError(CodeNotAllowed, "this workspace does not let a %s grant the %s role", resender.Role, m.Role)
	}
	if ttl <= 0 {
		return uuid.Nil, "", newError(CodeInvalidInput, "the invitation lifetime must be positive")
	}
	if err := w.invites.check(actor, 1, now, limits); err != nil {
		return uuid.Nil, "", err
	}
	inv := m.Invitation
	token := InvitationToken{WorkspaceID: w.id, InvitationID: inv.ID, Secret: secret}
	w.record(InvitationResent{
		WorkspaceID: w.id, InvitationID: inv.ID, UserID: m.UserID, Email: string(m.Email),
		Attempt: inv.Attempt + 1, ResentBy: actor, TokenHash: token.hash(m.Email),
		ResentAt: now, ExpiresAt: now.Add(ttl),
	})
	return inv.ID, token.String(), nil
}

// NextAttempt answers the invitation id and the attempt number a resend of
// userID's pending invitation would record, so the caller can derive the new
// link's secret before calling Resend.
func (w *Workspace) NextAttempt(userID uuid.UUID) (uuid.UUID, int, error) {
	m, err := w.pendingInvitation(userID)
	if err != nil {
		return uuid.Nil, 0, err
	}
	return m.Invitation.ID, m.Invitation.Attempt + 1, nil
}

func (w *Workspace) pendingInvitation(userID uuid.UUID) (*Member, error) {
	m, err := w.target(userID)
	if err != nil {
		return nil, err
	}
	if m.Status != StatusInvited {
		return nil, newError(CodeNotInvited, "this person has no pending invitation: they are %s", m.Status)
	}
	return m, nil
}

// RevokeInvitation withdraws a pending invitation; its link dies.
func (w *Workspace) RevokeInvitation(actor, userID uuid.UUID) error {
	m, err := authorizedFind(w, actor, PermInviteUsers, w.pendingInvitation, userID)
	if err != nil {
		return err
	}
	w.record(InvitationRevoked{
		WorkspaceID: w.id, InvitationID: m.Invitation.ID, UserID: m.UserID,
		Email: string(m.Email), Role: string(m.Role),
	})
	return nil
}

// Accept turns the invitation a token proves into an active membership. The
// token must be the invitation's current one, unexpired, unused and
// unrevoked, and whoever granted the role must still be able to grant it.
func (w *Workspace) Accept(t InvitationToken, name string, now time.Time) (Member, error) {
	inv, m, err := w.invitationFor(t, now)
	if err != nil {
		return Member{}, err
	}
	if name, err = cleanText(name, "name", "name", 200); err != nil {
		return Member{}, err
	}
	if !w.canGrant(w.members[inv.GrantedBy], m.Role) {
		return Member{}, ErrInviterCannotGrant
	}
	w.record(InvitationAccepted{
		WorkspaceID: w.id, InvitationID: inv.ID, UserID: m.UserID, Email: string(m.Email),
		Name: name, Role: string(m.Role), AcceptedAt: now,
	})
	accepted := *m
	accepted.Name, accepted.Status, accepted.Invitation = name, StatusActive, nil
	return accepted, nil
}

// Invitation answers what an invitation link shows, checking the token as
// Accept would but changing nothing.
func (w *Workspace) Invitation(t InvitationToken, now time.Time) (Member, error) {
	_, m, err := w.invitationFor(t, now)
	if err != nil {
		return Member{}, err
	}
	c, _ := w.Member(m.UserID)
	return c, nil
}

func (w *Workspace) invitationFor(t InvitationToken, now time.Time) (*Invitation, *Member, error) {
	if !w.exists || t.WorkspaceID != w.id {
		return nil, nil, ErrInvalidToken
	}
	userID, live := w.invitations[t.InvitationID]
	if !live {
		if c, ok := w.closed[t.InvitationID]; ok && t.matches(c.email, c.tokenHash) {
			return nil, nil, c.err
		}
		return nil, nil, ErrInvalidToken
	}
	m := w.members[userID]
	inv := m.Invitation
	if !t.matches(m.Email, inv.tokenHash) {
		for _, old := range inv.oldHashes {
			if t.matches(m.Email, old) {
				return nil, nil, newError(CodeInvitationRevoked, "this link was replaced by a newer one; use the link in the latest invitation e-mail")
			}
		}
		return nil, nil, ErrInvalidToken
	}
	if inv.expiredAt(now) {
		return nil, nil, ErrInvitationExpired
	}
	return inv, m, nil
}
