-- The audit history after erasure (projections/audit): a person's entries
-- are found across every workspace (an account's export), and an account's
-- deletion purges its remembered addresses in every workspace. The live
-- tables become what projections/audit/tables.sql and indexes.sql make.
--
-- The actor and target indexes now lead with the user id: the same index
-- serves a workspace's filter and a person's entries everywhere. Building
-- them blocks writes to audit_entries (the audit runner waits) for as long
-- as the build takes.

-- +goose Up
DROP INDEX audit_entries_actor_idx;
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, workspace_id, seq);
DROP INDEX audit_entries_target_idx;
CREATE INDEX audit_entries_target_idx ON audit_entries (target_id, workspace_id, seq);
CREATE INDEX audit_user_emails_user_idx ON audit_user_emails (user_id);

-- +goose Down
DROP INDEX audit_user_emails_user_idx;
DROP INDEX audit_entries_target_idx;
CREATE INDEX audit_entries_target_idx ON audit_entries (workspace_id, target_id, seq);
DROP INDEX audit_entries_actor_idx;
CREATE INDEX audit_entries_actor_idx ON audit_entries (workspace_id, actor_id, seq);
