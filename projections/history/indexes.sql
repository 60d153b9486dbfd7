-- The "as of" page's index (package history): a workspace's intervals in the
-- list's order, with the validity positions and times beside the key, so
-- that the intervals of other times are skipped in the index without
-- reading their rows. A page reads a person's few intervals per row it
-- shows. Apply needs none (it reads open intervals by primary key), so a
-- rebuild builds it once over the replayed table.

CREATE INDEX membership_intervals_asof_idx ON membership_intervals
    (workspace_id, sort_key, user_id, valid_from_commit, valid_from_prepare)
    INCLUDE (valid_to_commit, valid_to_prepare, valid_from_at, valid_to_at, status, role);


-- The active Admins as of a moment (the list's single-Admin flag): their
-- intervals are few, so the count reads a small partial index.
CREATE INDEX membership_intervals_admins_idx ON membership_intervals
    (workspace_id, valid_from_commit, valid_from_prepare)
    INCLUDE (valid_to_commit, valid_to_prepare, valid_from_at, valid_to_at)
    WHERE role = 'Admin' AND status = 'active';
