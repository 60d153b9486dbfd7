-- The workspace user list read model (projections/userlist).
--
-- userlist_create_tables(schema) creates the projection's tables with their
-- indexes in the given schema: this migration calls it for 'public' (the live
-- tables). A rebuild (projections.DeferredIndexes) calls
-- userlist_create_tables(schema, false) for a fresh schema, which creates the
-- tables with their primary keys only (all Apply reads or writes through),
-- replays the history into them, then calls userlist_create_indexes(schema)
-- for the list's indexes, built once over the full tables rather than kept up
-- row by row, and swaps the tables in. userlist_create_tables(schema) calls
-- userlist_create_indexes itself, so each index is defined in one place.
-- Every name inside is qualified, so they work whatever the caller's
-- search_path.
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
-- userlist_logins: each member's last login. Logins are the most frequent
-- event by far; kept apart, a login rewrites a narrow row with no index but
-- its key, instead of a wide row with five indexes. The list joins it by key
-- for the rows of a page.
-- userlist_workspaces: one row per workspace, with the position of the last
-- event the projection applied to that workspace (replays at or before it
-- are ignored: that is what makes Apply idempotent, removals included).

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- +goose StatementBegin
CREATE FUNCTION userlist_create_indexes(p_schema text) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    trgm text;
BEGIN
    SELECT n.nspname INTO trgm
    FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm IS NULL THEN
        RAISE EXCEPTION 'userlist_create_indexes: the pg_trgm extension is not installed';
    END IF;

    -- The page queries: one index per filter that narrows the order (the
    -- other filters are checked on the rows the index yields).
    EXECUTE format('CREATE INDEX userlist_users_sort_idx ON %1$I.userlist_users (workspace_id, sort_key, user_id)', p_schema);
    EXECUTE format('CREATE INDEX userlist_users_status_sort_idx ON %1$I.userlist_users (workspace_id, status, sort_key, user_id)', p_schema);
    EXECUTE format('CREATE INDEX userlist_users_role_sort_idx ON %1$I.userlist_users (workspace_id, role, sort_key, user_id)', p_schema);
    EXECUTE format('CREATE INDEX userlist_users_search_idx ON %1$I.userlist_users USING gin (search %2$I.gin_trgm_ops)', p_schema, trgm);
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION userlist_create_tables(p_schema text, p_with_secondary_indexes boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($sql$
        CREATE TABLE %1$I.userlist_workspaces (
            workspace_id uuid        PRIMARY KEY,
            name         text,
            created_at   timestamptz,
            pos_commit   bigint      NOT NULL,
            pos_prepare  bigint      NOT NULL
        )$sql$, p_schema);

    EXECUTE format($sql$
        CREATE TABLE %1$I.userlist_users (
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
            PRIMARY KEY (workspace_id, user_id),
            CONSTRAINT userlist_users_status_check CHECK (status IN ('invited', 'active', 'suspended')),
            CONSTRAINT userlist_users_email_status_check CHECK (email_status IN ('pending', 'sent', 'failed')),
            CONSTRAINT userlist_users_invitation_check CHECK ((status = 'invited') = (invitation_id IS NOT NULL))
        ) WITH (fillfactor = 85)$sql$, p_schema);

    EXECUTE format($sql$
        CREATE TABLE %1$I.userlist_logins (
            workspace_id  uuid        NOT NULL,
            user_id       uuid        NOT NULL,
            last_login_at timestamptz NOT NULL,
            PRIMARY KEY (workspace_id, user_id)
        ) WITH (fillfactor = 70)$sql$, p_schema);

    -- A finer sample of search lets the planner tell a rare text (read the
    -- few matches from the trigram index, then sort them) from a common one
    -- (read in order and filter until the page is full). With the default
    -- sample a rare text looked common and scanned a whole workspace.
    EXECUTE format('ALTER TABLE %1$I.userlist_users ALTER COLUMN search SET STATISTICS 1000', p_schema);

    IF p_with_secondary_indexes THEN
        PERFORM public.userlist_create_indexes(p_schema);
    END IF;
END
$fn$;
-- +goose StatementEnd

SELECT userlist_create_tables('public');

-- +goose Down
DROP TABLE userlist_users;
DROP TABLE userlist_logins;
DROP TABLE userlist_workspaces;
DROP FUNCTION userlist_create_tables(text, boolean);
DROP FUNCTION userlist_create_indexes(text);
