package commands

import (
	"context"
	"errors"

	"github.com/usersd/usersd/domain"
)

// Handler is the one shape of every use case: a command (or a query) in,
// its result or an error out. One decorator (instrument) observes them all.
type Handler[C, R any] interface {
	Handle(ctx context.Context, cmd C) (R, error)
}

// Application is everything usersd does, one field per use case, built
// once by NewApplication (cmd/usersd) and handed to the adapters, which
// call it and never build handlers of their own.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change the workspaces.
type Commands struct {
	CreateWorkspace        Handler[CreateWorkspace, CreateWorkspaceResult]
	InviteUsers            Handler[InviteUsers, InviteUsersResult]
	ResendInvitation       Handler[ResendInvitation, ResendInvitationResult]
	AcceptInvitation       Handler[AcceptInvitation, AcceptInvitationResult]
	ChangeRole             Handler[ChangeRole, domain.Position]
	RemoveUser             Handler[RemoveUser, domain.Position]
	SuspendUser            Handler[SuspendUser, domain.Position]
	ReactivateUser         Handler[ReactivateUser, domain.Position]
	UpdateSettings         Handler[UpdateSettings, domain.Position]
	RecordLogin            Handler[RecordLogin, domain.Position]
	ExpireInvitations      Handler[ExpireInvitations, ExpireInvitationsResult]
	RecordEmailOutcomes    Handler[RecordEmailOutcomes, domain.Position]
	StartAccessReview      Handler[StartAccessReview, StartAccessReviewResult]
	DecideAccessReviewItem Handler[DecideAccessReviewItem, domain.Position]
	CompleteAccessReview   Handler[CompleteAccessReview, domain.Position]
	// DeleteAccount is the platform's (a system token), across workspaces.
	DeleteAccount Handler[DeleteAccount, DeleteAccountResult]
	// SubscribeWebhook, RemoveWebhook and ReplayWebhook are an Admin's.
	SubscribeWebhook Handler[SubscribeWebhook, SubscribeWebhookResult]
	RemoveWebhook    Handler[RemoveWebhook, domain.Position]
	ReplayWebhook    Handler[ReplayWebhook, domain.Position]
	// AcceptAuditDivergence is the operator's (usersd projections rebuild
	// -accept-divergence), not the API's.
	AcceptAuditDivergence Handler[AcceptAuditDivergence, domain.Position]
}

// Queries read the workspaces as the commands decide on them (the
// aggregate), where a read model would be too late.
type Queries struct {
	LookupInvitation        Handler[LookupInvitation, InvitationView]
	ComposeInvitationEmails Handler[ComposeInvitationEmails, []ComposedInvitationEmail]
}

// Deps are what the application is built from: the adapters of its ports
// and the sources of time, ids and link secrets. Each handler takes only
// what it uses.
type Deps struct {
	Workspaces WorkspaceRepository
	Accounts   Accounts
	Logins     Logins
	Clock      Clock
	// IDs makes the ids of workspaces, invitations and events.
	IDs IDs
	// AccountIDs makes user ids; nil is RandomAccountIDs. It is a source
	// of its own so that user ids never come from the time-ordered IDs.
	AccountIDs IDs
	// People, Deleter and Keys serve DeleteAccount: the read models'
	// view of an account, the record of its deletion, and the key store.
	People  PersonDirectory
	Deleter AccountDeleter
	Keys    KeyShredder
	// Secrets derives link secrets: an HMACLinkSecrets under the
	// configured key, the same in every replica.
	Secrets LinkSecrets
	// WebhookTargets and WebhookSecrets serve SubscribeWebhook: where a
	// URL leads, and where the secret is kept.
	WebhookTargets WebhookTargets
	WebhookSecrets WebhookSecrets
}

// ProductionDeps fills the sources of time and ids with the real ones.
// secrets must be the same derivation (the same key) in every replica, or
// the links one replica's mailer builds will not match.
func ProductionDeps(ws WorkspaceRepository, accounts Accounts, logins Logins, secrets LinkSecrets) Deps {
	return Deps{Workspaces: ws, Accounts: accounts, Logins: logins, Clock: SystemClock{}, IDs: RandomIDs{}, AccountIDs: RandomAccountIDs{}, Secrets: secrets}
}

// NewApplication builds every handler from d, with the invitation policy p,
// each observed as in (logs and metrics). It panics on a missing dependency
// or a policy without a positive link lifetime.
func NewApplication(d Deps, p InvitationPolicy, in Instrumentation) Application {
	if p.TTL <= 0 {
		panic("commands: the invitation policy's TTL must be positive")
	}
	ws, clock, ids := d.Workspaces, d.Clock, d.IDs
	return Application{
		Commands: Commands{
			CreateWorkspace:        instrument("create_workspace", NewCreateWorkspaceHandler(ws, d.Accounts, clock, ids, d.AccountIDs), in),
			InviteUsers:            instrument("invite_users", NewInviteUsersHandler(ws, d.Accounts, clock, ids, d.AccountIDs, d.Secrets, p), in),
			ResendInvitation:       instrument("resend_invitation", NewResendInvitationHandler(ws, clock, ids, d.Secrets, p), in),
			AcceptInvitation:       instrument("accept_invitation", NewAcceptInvitationHandler(ws, clock, ids), in),
			ChangeRole:             instrument("change_role", NewChangeRoleHandler(ws, clock, ids), in),
			RemoveUser:             instrument("remove_user", NewRemoveUserHandler(ws, clock, ids), in),
			SuspendUser:            instrument("suspend_user", NewSuspendUserHandler(ws, clock, ids), in),
			ReactivateUser:         instrument("reactivate_user", NewReactivateUserHandler(ws, clock, ids), in),
			UpdateSettings:         instrument("update_settings", NewUpdateSettingsHandler(ws, clock, ids), in),
			RecordLogin:            instrument("record_login", NewRecordLoginHandler(ws, d.Logins, clock, ids), in),
			ExpireInvitations:      instrument("expire_invitations", NewExpireInvitationsHandler(ws, clock, ids), in),
			RecordEmailOutcomes:    instrument("record_email_outcomes", NewRecordEmailOutcomesHandler(ws, clock, ids), in),
			StartAccessReview:      instrument("start_access_review", NewStartAccessReviewHandler(ws, clock, ids), in),
			DecideAccessReviewItem: instrument("decide_access_review_item", NewDecideAccessReviewItemHandler(ws, clock, ids), in),
			CompleteAccessReview:   instrument("complete_access_review", NewCompleteAccessReviewHandler(ws, clock, ids), in),
			DeleteAccount:          instrument("delete_account", newDeleteAccount(d), in),
			SubscribeWebhook:       instrument("subscribe_webhook", newSubscribeWebhook(d), in),
			RemoveWebhook:          instrument("remove_webhook", NewRemoveWebhookHandler(ws, clock, ids), in),
			ReplayWebhook:          instrument("replay_webhook", NewReplayWebhookHandler(ws, clock, ids), in),
			AcceptAuditDivergence:  instrument("accept_audit_divergence", NewAcceptAuditDivergenceHandler(ws, clock, ids), in),
		},
		Queries: Queries{
			LookupInvitation:        instrument("lookup_invitation", NewLookupInvitationHandler(ws, clock), in),
			ComposeInvitationEmails: instrument("compose_invitation_emails", NewComposeInvitationEmailsHandler(ws, clock, d.Secrets), in),
		},
	}
}

// newDeleteAccount builds DeleteAccount, or, for an application built
// without its ports (tools and tests that never delete), a handler that
// refuses every deletion with errDeletionUnavailable.
func newDeleteAccount(d Deps) Handler[DeleteAccount, DeleteAccountResult] {
	if d.People == nil || d.Deleter == nil || d.Keys == nil {
		return unavailableDeletion{}
	}
	return NewDeleteAccountHandler(d.Workspaces, d.People, d.Deleter, d.Keys, d.Clock, d.IDs)
}

// errDeletionUnavailable is the error of an application built without the
// ports of DeleteAccount.
var errDeletionUnavailable = errors.New("account deletion is not configured in this process")

type unavailableDeletion struct{}

func (unavailableDeletion) Handle(context.Context, DeleteAccount) (DeleteAccountResult, error) {
	return DeleteAccountResult{}, errDeletionUnavailable
}
