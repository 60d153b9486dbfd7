// Package domain is usersd's core: the workspace aggregate, the events it
// records, the roles and their permissions, and the value types and errors
// of the rules. It does no I/O and knows no clock: time, new ids and secrets
// come in as arguments, so the same state and arguments always decide the
// same way. It imports only the standard library and google/uuid.
//
// The workspace aggregate decides, then applies. Its exported methods
// (Invite, Resend, Accept, ChangeRole, Remove, Suspend, ...) check the
// rules against the current state and record events, or answer an *Error
// with a stable Code; a no-op records nothing. The state changes only in
// apply, once the store has accepted the events (Commit), or when a stream
// is read back (Replay).
//
// Where things are:
//
//   - workspace.go: the Workspace state, its accessors, Create and
//     UpdateSettings, and the permission check every decision starts with;
//   - invitations.go: inviting a batch, resending, revoking, and the links
//     (looking an invitation up by its token, accepting it);
//   - membership.go: role changes, removal, suspension, reactivation, logins;
//   - expiry.go: invitations whose time ran out;
//   - outcomes.go: the e-mail outcomes the mailer reports;
//   - reviews.go: access reviews (start, decide an item, complete);
//   - webhooks.go: subscribing webhooks, removing them, asking for a
//     replay, and the form of their URLs and event lists;
//   - apply.go: the one place the state changes;
//   - events.go: the events and registerEvents, where each is declared
//     (stored name, schema version); registry.go: what the registry
//     answers (EventName, WorkspaceOf from the WorkspaceID field,
//     EncodeEvent, DecodeEvent);
//   - role.go, errors.go, email.go, batch.go, token.go, ratelimit.go,
//     position.go: roles and permissions, error codes, addresses, invitation
//     batches, link tokens, the invitation limits, store positions.
package domain
