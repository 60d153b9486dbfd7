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
--   An account's deletion blanks email and name in every interval of the
--   person (docs/erasure.md): the history of an erased person shows the id.
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
    PRIMARY KEY (workspace_id, user_id, valid_from_commit, valid_from_prepare),
    CONSTRAINT membership_intervals_status_check CHECK (status IN ('invited', 'active', 'suspended')),
    CONSTRAINT membership_intervals_to_check CHECK ((valid_to_commit IS NULL) = (valid_to_prepare IS NULL) AND (valid_to_commit IS NULL) = (valid_to_at IS NULL))
);

-- A person's intervals in every workspace: an account's deletion blanks
-- them (Apply) and the account export reads them, by user id alone.
CREATE INDEX membership_intervals_user_idx ON membership_intervals (user_id);
