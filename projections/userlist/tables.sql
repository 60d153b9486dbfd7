-- The user list's tables (package userlist), with what Apply needs: primary
-- keys (Apply reads and writes through them only) and constraints. The
-- list's own indexes are in indexes.sql, which a rebuild builds after its
-- replay (projections.Schema). Names are unqualified: the tables go to the
-- schema first on the search_path (projections.CreateTables). The live
-- tables were made by migrations/00003_userlist.sql; a change here needs a
-- migration that makes the live tables the same (TestSchemasMatchMigrations).
--
-- userlist_users: one row per (workspace, person) who is invited, active or
-- suspended. Removed members and revoked invitations have no row.
--   sort_key  lower(name, else e-mail): the list's order is (sort_key,
--             user_id); "C" collation, so the order is by code point, the same
--             on every server and safe from locale library upgrades.
--   search    lower(name + e-mail), for the case-insensitive substring query
--             (trigram GIN index). A newline separates the two, which a query
--             cannot contain, so no match spans the name and the e-mail.
--   invitation_* columns are set exactly while the status is 'invited'.
--   role_until  when a temporary role ends (RoleChanged.until), NULL when it
--               does not; the expiry scheduler finds due grants by it.
--               Last because 00014 added it to the live table.
--   fillfactor 70: every invited row is updated soon after its insert
--   (its e-mail's status), and an update that finds no room on the row's
--   page is not HOT: new entries in all five indexes, the trigram one
--   included (migrations/00022_read_model_fillfactor.sql).
-- userlist_logins: each person's last login, one row per userlist_users
-- row (NULL: never logged in). Logins are the most frequent event by far;
-- kept apart, a login rewrites a narrow row with two indexes (its key and
-- the last-login order), instead of a wide row with five. The list joins it
-- by key for the rows of a page, and reads it first when sorted by last
-- login (indexes.sql).
-- userlist_workspaces: one row per workspace, with the position of the last
-- event the projection applied to that workspace (projections.Positions).

CREATE TABLE userlist_workspaces (
    workspace_id uuid        PRIMARY KEY,
    name         text,
    created_at   timestamptz,
    pos_commit   bigint      NOT NULL,
    pos_prepare  bigint      NOT NULL
);

CREATE TABLE userlist_users (
    workspace_id  uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    email         text        NOT NULL,
    name          text,
    role          text        NOT NULL,
    status        text        NOT NULL,
    invitation_id uuid,
    invited_at    timestamptz,
    invited_by    uuid,
    expires_at    timestamptz,
    expired       boolean     NOT NULL DEFAULT false,
    attempt       integer     NOT NULL DEFAULT 0,
    email_status  text,
    sort_key      text COLLATE "C" GENERATED ALWAYS AS (lower(coalesce(name, email))) STORED,
    search        text GENERATED ALWAYS AS (lower(coalesce(name, '') || E'\n' || email)) STORED,
    role_until    timestamptz,
    PRIMARY KEY (workspace_id, user_id),
    CONSTRAINT userlist_users_status_check CHECK (status IN ('invited', 'active', 'suspended')),
    CONSTRAINT userlist_users_email_status_check CHECK (email_status IN ('pending', 'sent', 'failed')),
    CONSTRAINT userlist_users_invitation_check CHECK ((status = 'invited') = (invitation_id IS NOT NULL))
) WITH (fillfactor = 70);

CREATE TABLE userlist_logins (
    workspace_id  uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    last_login_at timestamptz,
    PRIMARY KEY (workspace_id, user_id)
) WITH (fillfactor = 70);

-- A finer sample of search lets the planner tell a rare text (read the few
-- matches from the trigram index, then sort them) from a common one (read in
-- order and filter until the page is full). With the default sample a rare
-- text looked common and scanned a whole workspace.
ALTER TABLE userlist_users ALTER COLUMN search SET STATISTICS 1000;
