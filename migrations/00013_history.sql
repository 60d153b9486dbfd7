-- The history read model (projections/history): the user list's rows
-- through time, for the list as of a past moment and each member's history
-- (issue 17). A new projection has no checkpoint: its runner reads the
-- whole history from the start and fills the tables.

-- +goose Up

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
    PRIMARY KEY (workspace_id, user_id, valid_from_commit, valid_from_prepare),
    CONSTRAINT membership_intervals_status_check CHECK (status IN ('invited', 'active', 'suspended')),
    CONSTRAINT membership_intervals_to_check CHECK ((valid_to_commit IS NULL) = (valid_to_prepare IS NULL) AND (valid_to_commit IS NULL) = (valid_to_at IS NULL))
);

CREATE INDEX membership_intervals_asof_idx ON membership_intervals
    (workspace_id, sort_key, user_id, valid_from_commit, valid_from_prepare)
    INCLUDE (valid_to_commit, valid_to_prepare, valid_from_at, valid_to_at, status, role);

CREATE INDEX membership_intervals_admins_idx ON membership_intervals
    (workspace_id, valid_from_commit, valid_from_prepare)
    INCLUDE (valid_to_commit, valid_to_prepare, valid_from_at, valid_to_at)
    WHERE role = 'Admin' AND status = 'active';

-- +goose Down
DROP TABLE membership_intervals;
DROP TABLE history_workspaces;
