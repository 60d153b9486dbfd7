-- Access reviews (issue 17): tables of the history read model
-- (projections/history/tables.sql), and who set each interval's role and
-- when (membership_intervals.granted_by, granted_at), which a review's items
-- show. The history projection keeps its checkpoint: no review was started
-- before these tables existed, and the grants of the intervals already there
-- are filled in below from the intervals themselves, by the projection's own
-- rule: an interval sets the role when its event is the workspace's creation
-- or an invitation, when its role differs from the interval before (a role
-- change, a temporary role's end), or when it follows a gap (the person had
-- left); the intervals after it carry that grant while the role stays.

-- +goose Up
ALTER TABLE membership_intervals ADD COLUMN granted_by uuid, ADD COLUMN granted_at timestamptz;

UPDATE membership_intervals m SET granted_by = g.granted_by, granted_at = g.granted_at
FROM (
    SELECT s.workspace_id, s.user_id, s.fc, s.fp,
        first_value(s.changed_by) OVER r AS granted_by, first_value(s.valid_from_at) OVER r AS granted_at
    FROM (
        SELECT b.*, count(*) FILTER (WHERE b.grants) OVER (PARTITION BY b.workspace_id, b.user_id ORDER BY b.fc, b.fp) AS grant_no
        FROM (
            SELECT i.workspace_id, i.user_id, i.changed_by, i.valid_from_at,
                i.valid_from_commit AS fc, i.valid_from_prepare AS fp,
                (i.action IN ('WorkspaceCreated', 'UserInvited')
                    OR lag(i.role) OVER w IS DISTINCT FROM i.role
                    OR lag(i.valid_to_commit) OVER w IS DISTINCT FROM i.valid_from_commit
                    OR lag(i.valid_to_prepare) OVER w IS DISTINCT FROM i.valid_from_prepare) AS grants
            FROM membership_intervals i
            WINDOW w AS (PARTITION BY i.workspace_id, i.user_id ORDER BY i.valid_from_commit, i.valid_from_prepare)
        ) b
    ) s
    WINDOW r AS (PARTITION BY s.workspace_id, s.user_id, s.grant_no ORDER BY s.fc, s.fp)
) g
WHERE m.workspace_id = g.workspace_id AND m.user_id = g.user_id
    AND m.valid_from_commit = g.fc AND m.valid_from_prepare = g.fp;

CREATE TABLE access_reviews (
    workspace_id       uuid        NOT NULL,
    review_id          uuid        NOT NULL,
    name               text        NOT NULL,
    started_by         uuid,
    started_at         timestamptz NOT NULL,
    as_of_commit       bigint      NOT NULL,
    as_of_prepare      bigint      NOT NULL,
    items              integer     NOT NULL,
    decided            integer     NOT NULL DEFAULT 0,
    completed_by       uuid,
    completed_at       timestamptz,
    completed_commit   bigint,
    completed_prepare  bigint,
    completed_event_id uuid,
    PRIMARY KEY (workspace_id, review_id),
    CONSTRAINT access_reviews_completed_check CHECK ((completed_at IS NULL) = (completed_commit IS NULL) AND (completed_at IS NULL) = (completed_event_id IS NULL))
);

CREATE TABLE access_review_items (
    workspace_id  uuid        NOT NULL,
    review_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    email         text        NOT NULL,
    name          text,
    role          text        NOT NULL,
    status        text        NOT NULL,
    granted_by    uuid,
    granted_at    timestamptz,
    last_login_at timestamptz,
    dormant       boolean     NOT NULL,
    decision      text,
    new_role      text,
    comment       text,
    decided_by    uuid,
    decided_at    timestamptz,
    sort_key      text COLLATE "C" GENERATED ALWAYS AS (lower(coalesce(name, email))) STORED,
    PRIMARY KEY (workspace_id, review_id, user_id),
    CONSTRAINT access_review_items_decision_check CHECK (decision IN ('keep', 'change_role', 'revoke'))
);

-- +goose Down
DROP TABLE access_review_items;
DROP TABLE access_reviews;
ALTER TABLE membership_intervals DROP COLUMN granted_at, DROP COLUMN granted_by;
