-- The memberships read model (projections/memberships): a person's
-- workspaces, and the role and status that decide their permissions.
--
-- memberships_create_tables(schema) creates the projection's tables in the
-- given schema: this migration calls it for 'public' (the live tables), a
-- rebuild calls it for a fresh schema and swaps the tables in.
--
-- memberships: one row per (person, workspace) they have joined, active or
-- suspended. Pending invitations have no row: an invited person is not a
-- member yet (the API answers 404 for the workspace until they accept).
-- The primary key (user_id, workspace_id) serves both queries: the
-- permission check (one key) and a person's workspaces (a key prefix). With
-- no secondary index, there is nothing for a rebuild to build after its
-- replay (projections.DeferredIndexes): keep it so, or split the function
-- as userlist_create_tables does.
-- memberships_workspaces: each workspace's name, and the position of the
-- last event the projection applied to it (replays at or before it are
-- ignored, which makes Apply idempotent).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION memberships_create_tables(p_schema text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($sql$
        CREATE TABLE %1$I.memberships_workspaces (
            workspace_id uuid   PRIMARY KEY,
            name         text   NOT NULL DEFAULT '',
            pos_commit   bigint NOT NULL,
            pos_prepare  bigint NOT NULL
        )$sql$, p_schema);

    EXECUTE format($sql$
        CREATE TABLE %1$I.memberships (
            user_id      uuid NOT NULL,
            workspace_id uuid NOT NULL,
            role         text NOT NULL,
            status       text NOT NULL,
            PRIMARY KEY (user_id, workspace_id),
            CONSTRAINT memberships_status_check CHECK (status IN ('active', 'suspended'))
        ) WITH (fillfactor = 90)$sql$, p_schema);
END
$fn$;
-- +goose StatementEnd

SELECT memberships_create_tables('public');

-- +goose Down
DROP TABLE memberships;
DROP TABLE memberships_workspaces;
DROP FUNCTION memberships_create_tables(text);
