-- The filters of GET /audit (package audit). Every index costs each insert
-- of the live runner (a rebuild builds them once, after its replay), so only
-- what pays for itself: actor and target (selective), ending in seq for the
-- keyset order; action only for the rare actions, as logins, the bulk of a
-- history, are found fast enough along the primary key (audit.List names the
-- action as a literal so that the planner can use the partial index); time
-- as BRIN: entries are appended in event order, so blocks follow occurred_at
-- closely, and a BRIN index costs next to nothing to keep. autosummarize has
-- autovacuum summarize each block range as it fills; ranges not summarized
-- yet (the newest) are always read.
--
-- Actor and target lead with the user id, then the workspace: the same
-- index serves a workspace's filter (both equal, then seq) and a person's
-- entries across every workspace (audit.ForPerson, for an account's
-- export), without a second pair of indexes to keep on every insert.

CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, workspace_id, seq);
CREATE INDEX audit_entries_target_idx ON audit_entries (target_id, workspace_id, seq);
CREATE INDEX audit_entries_action_idx ON audit_entries (workspace_id, action, seq)
    WHERE action <> 'UserLoggedIn';
CREATE INDEX audit_entries_occurred_at_idx ON audit_entries USING brin (occurred_at)
    WITH (pages_per_range = 32, autosummarize = on);
