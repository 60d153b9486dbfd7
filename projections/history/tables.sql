-- The history read model's tables (package history). Names are unqualified:
-- the tables go to the schema first on the search_path
-- (projections.CreateTables). The live tables were made by
-- migrations/00013_history.sql; a change here needs a migration that makes
-- the live tables the same (TestSchemasMatchMigrations).
--
-- membership_intervals: the user list's rows through time. Each event that
-- changes what a person's row shows closes the row's open interval (valid_to)
-- and opens the next (valid_from, the event's position and time); a removal
-- or a revocation only closes it. A row shows the whole user-list row of its
-- interval (same columns as userlist_users, with the last login), so a page
-- "as of" a position is the rows whose interval contains it, read in the
-- list's order. valid_to_* are NULL while the interval is current.
--   role_until: when a temporary role ends, as the user list shows it
--   (userlist_users.role_until); a grant's end and its expiry (or refused
--   expiry) each open an interval.
--   changed_by, action, event_id: who recorded the event that opened the
--   interval (NULL for the system), its type name and id.
--   granted_by, granted_at: who set the role the interval shows, and when:
--   the event that did (the workspace's creation, the invitation, a role
--   change or a temporary role's end), carried on by the intervals after it
--   while the role stays (NULL by for the system). Last because 00015 added
--   them to the live table.
--   An account's deletion blanks email and name in every interval of the
--   person (docs/erasure.md): the history of an erased person shows the id.
--   fillfactor 80: nearly every interval is closed once, by an update
--   that, with room on its page, writes the new version there (no lock
--   record, the unchanged bytes left out of the WAL) (migrations/00022).
-- history_workspaces: the position of the last event the projection applied
-- to each workspace (projections.Positions).

CREATE TABLE history_workspaces (
    workspace_id uuid   PRIMARY KEY,
    pos_commit   bigint NOT NULL,
    pos_prepare  bigint NOT NULL
);

CREATE TABLE membership_intervals (
    workspace_id       uuid        NOT NULL,
    user_id            uuid        NOT NULL,
    valid_from_commit  bigint      NOT NULL,
    valid_from_prepare bigint      NOT NULL,
    valid_from_at      timestamptz NOT NULL,
    valid_to_commit    bigint,
    valid_to_prepare   bigint,
    valid_to_at        timestamptz,
    email              text        NOT NULL,
    name               text,
    role               text        NOT NULL,
    status             text        NOT NULL,
    invitation_id      uuid,
    invited_at         timestamptz,
    invited_by         uuid,
    expires_at         timestamptz,
    expired            boolean     NOT NULL DEFAULT false,
    attempt            integer     NOT NULL DEFAULT 0,
    email_status       text,
    last_login_at      timestamptz,
    role_until         timestamptz,
    changed_by         uuid,
    action             text        NOT NULL,
    event_id           uuid        NOT NULL,
    sort_key           text COLLATE "C" GENERATED ALWAYS AS (lower(coalesce(name, email))) STORED,
    search             text GENERATED ALWAYS AS (lower(coalesce(name, '') || E'\n' || email)) STORED,
    granted_by         uuid,
    granted_at         timestamptz,
    PRIMARY KEY (workspace_id, user_id, valid_from_commit, valid_from_prepare),
    CONSTRAINT membership_intervals_status_check CHECK (status IN ('invited', 'active', 'suspended')),
    CONSTRAINT membership_intervals_to_check CHECK ((valid_to_commit IS NULL) = (valid_to_prepare IS NULL) AND (valid_to_commit IS NULL) = (valid_to_at IS NULL))
) WITH (fillfactor = 80);

-- Access reviews (issue 17) are part of the history: a review's population
-- is the membership as of its start, materialised from membership_intervals
-- in the transaction that applies the start, so it is never built from a
-- history that is behind or ahead of it.
-- access_reviews: one row per review. as_of_* is the start's position (the
-- population is the list as of it); decided counts the items decided;
-- completed_* are set by the completion (its position and event id find the
-- audit entry whose head the evidence carries).
-- access_review_items: one row per person of a review, as the list showed
-- them at the start (email, name, role, status, who gave them that role and
-- when: the interval's granted_*), their last login then and whether they were dormant (no
-- login in the 90 days before the start, never included); then the decision
-- in force, who made it and when. An account's deletion blanks email, name
-- and comment (docs/erasure.md): the item shows the id, erased.

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
