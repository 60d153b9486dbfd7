-- The memberships read model's tables (package memberships). Names are
-- unqualified: the tables go to the schema first on the search_path
-- (projections.CreateTables). The live tables were made by
-- migrations/00004_memberships.sql; a change here needs a migration that
-- makes the live tables the same (TestSchemasMatchMigrations).
--
-- memberships: one row per (person, workspace) they have joined, active or
-- suspended. Pending invitations have no row: an invited person is not a
-- member yet (the API answers 404 for the workspace until they accept).
-- The primary key (user_id, workspace_id) serves both queries: the
-- permission check (one key) and a person's workspaces (a key prefix). The
-- only secondary index (indexes.sql) is the accounts' address, for lookups.
-- memberships_workspaces: each workspace's name, and the position of the
-- last event the projection applied to it (projections.Positions).

CREATE TABLE memberships_workspaces (
    workspace_id uuid   PRIMARY KEY,
    name         text   NOT NULL DEFAULT '',
    pos_commit   bigint NOT NULL,
    pos_prepare  bigint NOT NULL
);

CREATE TABLE memberships (
    user_id      uuid NOT NULL,
    workspace_id uuid NOT NULL,
    role         text NOT NULL,
    status       text NOT NULL,
    PRIMARY KEY (user_id, workspace_id),
    CONSTRAINT memberships_status_check CHECK (status IN ('active', 'suspended'))
) WITH (fillfactor = 90);

-- memberships_accounts: one row per account (AccountRegistered), for the
-- platform's account endpoints: whether an id is an account, and its
-- address for a lookup and a person's export. The address is kept in clear,
-- as the user list keeps it; a deletion (AccountDeleted) clears it and
-- keeps the row, so that a deleted id answers "erased", not "unknown".
CREATE TABLE memberships_accounts (
    user_id    uuid        PRIMARY KEY,
    email      text,
    deleted_at timestamptz,
    CONSTRAINT memberships_accounts_erased_check CHECK (deleted_at IS NULL OR email IS NULL)
);
