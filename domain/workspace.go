package domain

import (
	"sort"
	"time"

	"github.com/google/uuid"
)

// Status is where a membership stands. Removed members and revoked
// invitations leave the workspace state altogether.
type Status string

const (
	StatusInvited   Status = "invited"
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
)

// Settings are a workspace's own rules.
type Settings struct {
	// ManagersMayGrantAdmin lets a Manager invite someone as Admin, as the
	// product documents. It is a privilege-escalation path, so an Admin can
	// turn it off.
	ManagersMayGrantAdmin bool
}

// DefaultSettings are a new workspace's settings.
func DefaultSettings() Settings { return Settings{ManagersMayGrantAdmin: true} }

// Member is one person's membership, or a pending invitation.
type Member struct {
	UserID     uuid.UUID
	Email      Email
	Name       string
	Role       Role
	Status     Status
	Invitation *Invitation // set while Status is invited
}

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

// Workspace is the membership aggregate: members, roles, statuses,
// invitations and settings of one workspace. Its exported methods decide:
// they check the rules and record events, which take effect on the state
// only through apply, once the store has accepted them (Commit). That keeps
// a cached Workspace unchanged when an append fails.
type Workspace struct {
	id           uuid.UUID
	name         string
	exists       bool
	settings     Settings
	members      map[uuid.UUID]*Member
	byEmail      map[Email]uuid.UUID
	invitations  map[uuid.UUID]uuid.UUID // live invitation id to user id
	closed       map[uuid.UUID]closedInvitation
	activeAdmins int
	invites      inviteLog
	pending      []Event
}

// NewWorkspace returns the empty state of workspace id, ready to replay its
// stream or to be created.
func NewWorkspace(id uuid.UUID) *Workspace {
	return &Workspace{
		id:          id,
		settings:    DefaultSettings(),
		members:     make(map[uuid.UUID]*Member),
		byEmail:     make(map[Email]uuid.UUID),
		invitations: make(map[uuid.UUID]uuid.UUID),
		closed:      make(map[uuid.UUID]closedInvitation),
		invites:     newInviteLog(),
	}
}

func (w *Workspace) ID() uuid.UUID      { return w.id }
func (w *Workspace) Name() string       { return w.name }
func (w *Workspace) Exists() bool       { return w.exists }
func (w *Workspace) Settings() Settings { return w.settings }
func (w *Workspace) ActiveAdmins() int  { return w.activeAdmins }
func (w *Workspace) MemberCount() int   { return len(w.members) }

// Member returns a copy of one membership.
func (w *Workspace) Member(userID uuid.UUID) (Member, bool) {
	m, ok := w.members[userID]
	if !ok {
		return Member{}, false
	}
	c := *m
	if m.Invitation != nil {
		inv := *m.Invitation
		c.Invitation = &inv
	}
	return c, true
}

// MemberByEmail returns a copy of the membership of an address.
func (w *Workspace) MemberByEmail(e Email) (Member, bool) {
	id, ok := w.byEmail[e]
	if !ok {
		return Member{}, false
	}
	return w.Member(id)
}

// Pending lists the events recorded and not yet committed.
func (w *Workspace) Pending() []Event { return w.pending }

// Commit applies the pending events: the store has accepted them.
func (w *Workspace) Commit() {
	for _, e := range w.pending {
		w.apply(e)
	}
	w.pending = nil
}

// Discard forgets the pending events: the store refused them.
func (w *Workspace) Discard() { w.pending = nil }

// Replay applies events read from the store.
func (w *Workspace) Replay(events ...Event) {
	for _, e := range events {
		w.apply(e)
	}
}

func (w *Workspace) record(e Event) { w.pending = append(w.pending, e) }

// Create opens the workspace with its owner as its first active Admin.
func (w *Workspace) Create(name string, owner uuid.UUID, ownerEmail Email, ownerName string, now time.Time) error {
	if w.exists {
		return newError(CodeWorkspaceExists, "the workspace already exists")
	}
	name, ownerName, err := workspaceNames(name, ownerName)
	if err != nil {
		return err
	}
	if ownerEmail == "" || owner == uuid.Nil {
		return newError(CodeInvalidInput, "the workspace needs an owner with an e-mail address")
	}
	w.record(WorkspaceCreated{
		WorkspaceID: w.id, Name: name, OwnerUserID: owner,
		OwnerEmail: string(ownerEmail), OwnerName: ownerName, CreatedAt: now,
	})
	return nil
}

// authorize finds the acting member and checks they hold perm. A person who
// is not a member (or only invited) learns nothing about the workspace.
func (w *Workspace) authorize(actor uuid.UUID, perm Permission) (*Member, error) {
	m := w.members[actor]
	if !w.exists {
		m = nil
	}
	if err := Authorize(m, perm); err != nil {
		return nil, err
	}
	return m, nil
}

// Authorize checks that actor is an active member holding perm.
func (w *Workspace) Authorize(actor uuid.UUID, perm Permission) error {
	_, err := w.authorize(actor, perm)
	return err
}

func (w *Workspace) target(userID uuid.UUID) (*Member, error) {
	m, ok := w.members[userID]
	if !ok {
		return nil, ErrUserNotFound
	}
	return m, nil
}

// canGrant reports whether member g may, right now, give someone role r.
func (w *Workspace) canGrant(g *Member, r Role) bool {
	if g == nil || g.Status != StatusActive || !g.Role.Can(PermInviteUsers) {
		return false
	}
	return !r.Above(g.Role) || w.settings.ManagersMayGrantAdmin
}

// lastActiveAdmin reports whether m is the only active Admin left.
func (w *Workspace) lastActiveAdmin(m *Member) bool {
	return m.Status == StatusActive && m.Role == RoleAdmin && w.activeAdmins <= 1
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

// PendingInvitationID answers the id of a person's pending invitation.
func (w *Workspace) PendingInvitationID(userID uuid.UUID) (uuid.UUID, error) {
	m, err := w.pendingInvitation(userID)
	if err != nil {
		return uuid.Nil, err
	}
	return m.Invitation.ID, nil
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
	if _, err := w.authorize(actor, PermInviteUsers); err != nil {
		return err
	}
	m, err := w.pendingInvitation(userID)
	if err != nil {
		return err
	}
	w.record(InvitationRevoked{
		WorkspaceID: w.id, InvitationID: m.Invitation.ID, UserID: m.UserID,
		Email: string(m.Email), Role: string(m.Role),
	})
	return nil
}

// Remove revokes a member's access to this workspace, or withdraws a
// pending invitation (which a Manager may do too).
func (w *Workspace) Remove(actor, userID uuid.UUID) error {
	if m, ok := w.members[userID]; ok && m.Status == StatusInvited {
		return w.RevokeInvitation(actor, userID)
	}
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	m, err := w.target(userID)
	if err != nil {
		return err
	}
	if w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	w.record(MemberRemoved{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// ChangeRole gives a member, or a pending invitation, another role. The
// same role again changes nothing.
func (w *Workspace) ChangeRole(actor, userID uuid.UUID, role Role) error {
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return err
	}
	if !role.Valid() {
		return fieldError("role", CodeInvalidRole, "unknown role %q", role)
	}
	m, err := w.target(userID)
	if err != nil {
		return err
	}
	if m.Role == role {
		return nil
	}
	if role != RoleAdmin && w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	w.record(RoleChanged{
		WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email),
		FromRole: string(m.Role), ToRole: string(role), ChangedBy: actor,
	})
	return nil
}

// Suspend blocks an active member's access and keeps the membership.
// Suspending a suspended member changes nothing.
func (w *Workspace) Suspend(actor, userID uuid.UUID) error {
	m, err := w.manageMember(actor, userID)
	if err != nil || m.Status == StatusSuspended {
		return err
	}
	if w.lastActiveAdmin(m) {
		return newError(CodeLastAdmin, "%s is the workspace's last active Admin; make someone else Admin first", m.Email)
	}
	w.record(MemberSuspended{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// Reactivate gives a suspended member access again. Reactivating an active
// member changes nothing.
func (w *Workspace) Reactivate(actor, userID uuid.UUID) error {
	m, err := w.manageMember(actor, userID)
	if err != nil || m.Status == StatusActive {
		return err
	}
	w.record(MemberReactivated{WorkspaceID: w.id, UserID: m.UserID, Email: string(m.Email), Role: string(m.Role)})
	return nil
}

// manageMember finds the target of suspend or reactivate: an Admin acting
// on someone who has joined.
func (w *Workspace) manageMember(actor, userID uuid.UUID) (*Member, error) {
	if _, err := w.authorize(actor, PermManageUsers); err != nil {
		return nil, err
	}
	m, err := w.target(userID)
	if err != nil {
		return nil, err
	}
	if m.Status == StatusInvited {
		return nil, newError(CodeNotActive, "this person has not accepted the invitation yet; revoke it instead")
	}
	return m, nil
}

// UpdateSettings sets the workspace's settings. Unchanged settings record
// nothing.
func (w *Workspace) UpdateSettings(actor uuid.UUID, s Settings) error {
	if _, err := w.authorize(actor, PermAdministerSystem); err != nil {
		return err
	}
	if s == w.settings {
		return nil
	}
	w.record(WorkspaceSettingsChanged{WorkspaceID: w.id, ManagersMayGrantAdmin: s.ManagersMayGrantAdmin})
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

// Login checks that a member may log in and answers the event to record on
// the logins stream (not this workspace's stream, so that frequent logins
// never contend with membership changes).
func (w *Workspace) Login(userID uuid.UUID, at time.Time) (UserLoggedIn, error) {
	m, ok := w.members[userID]
	if !w.exists || !ok || m.Status == StatusInvited {
		return UserLoggedIn{}, ErrUserNotFound
	}
	if m.Status == StatusSuspended {
		return UserLoggedIn{}, newError(CodeMemberSuspended, "this member's access is suspended")
	}
	return UserLoggedIn{WorkspaceID: w.id, UserID: userID, LoggedInAt: at}, nil
}

// RecordEmailSent records that the e-mail of an invitation's attempt went
// out. An outcome for an invitation that is gone or for an older attempt
// records nothing: a newer link has replaced it. Nor does a second outcome
// for the same attempt: the first one stands.
func (w *Workspace) RecordEmailSent(invID uuid.UUID, attempt int) {
	if m := w.liveInvitation(invID, attempt); m != nil {
		w.record(InvitationEmailSent{WorkspaceID: w.id, InvitationID: invID, UserID: m.UserID, Attempt: attempt})
	}
}

// RecordEmailFailed records that an attempt's e-mail could not be delivered.
func (w *Workspace) RecordEmailFailed(invID uuid.UUID, attempt int, reason string) {
	if m := w.liveInvitation(invID, attempt); m != nil {
		w.record(InvitationEmailFailed{
			WorkspaceID: w.id, InvitationID: invID, UserID: m.UserID, Attempt: attempt,
			Reason: truncate(reason, 500),
		})
	}
}

func (w *Workspace) liveInvitation(invID uuid.UUID, attempt int) *Member {
	userID, ok := w.invitations[invID]
	if !ok {
		return nil
	}
	m := w.members[userID]
	if m.Invitation.Attempt != attempt || m.Invitation.outcomeRecorded {
		return nil
	}
	return m
}

// ExpireInvitations records the expiry of every pending invitation whose
// time is up and that is not marked expired yet, oldest first.
func (w *Workspace) ExpireInvitations(now time.Time) int {
	var due []*Member
	for _, userID := range w.invitations {
		m := w.members[userID]
		if !m.Invitation.Expired && !now.Before(m.Invitation.ExpiresAt) {
			due = append(due, m)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		a, b := due[i].Invitation, due[j].Invitation
		if !a.ExpiresAt.Equal(b.ExpiresAt) {
			return a.ExpiresAt.Before(b.ExpiresAt)
		}
		return a.ID.String() < b.ID.String()
	})
	for _, m := range due {
		w.record(InvitationExpired{
			WorkspaceID: w.id, InvitationID: m.Invitation.ID, UserID: m.UserID,
			Email: string(m.Email), ExpiredAt: now,
		})
	}
	return len(due)
}

// NextExpiry answers the earliest expiry among invitations not yet marked
// expired, so a scheduler knows when to look again.
func (w *Workspace) NextExpiry() (time.Time, bool) {
	var next time.Time
	found := false
	for _, userID := range w.invitations {
		inv := w.members[userID].Invitation
		if !inv.Expired && (!found || inv.ExpiresAt.Before(next)) {
			next, found = inv.ExpiresAt, true
		}
	}
	return next, found
}
