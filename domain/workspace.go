package domain

import (
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
	// RoleUntil is when a temporary role ends (zero: it does not), and
	// RoleBefore the role that then comes back.
	RoleUntil  time.Time
	RoleBefore Role
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
	webhooks     map[uuid.UUID]Webhook
	reviews      map[uuid.UUID]*accessReview
	openReviews  int
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
		webhooks:    make(map[uuid.UUID]Webhook),
		reviews:     make(map[uuid.UUID]*accessReview),
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

// authorizedFind starts a decision on one thing (a member, an invitation, a
// review): actor must hold perm, then find must answer the thing id names.
// The actor is checked first, so that who may not act learns nothing of it.
func authorizedFind[T any](w *Workspace, actor uuid.UUID, perm Permission, find func(id uuid.UUID) (*T, error), id uuid.UUID) (*T, error) {
	if _, err := w.authorize(actor, perm); err != nil {
		return nil, err
	}
	return find(id)
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
