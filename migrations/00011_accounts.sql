-- The accounts of the memberships read model (projections/memberships):
-- which ids are accounts, deleted or not, and their addresses, for
-- /v1/accounts (issue 16).
--
-- The projection's checkpoint is dropped so that its runner reads the
-- history again from the start and fills the new table with the accounts
-- registered before: every workspace event is skipped by its workspace's
-- stored position (projections.Positions), and account rows are written
-- idempotently.

-- +goose Up
CREATE TABLE memberships_accounts (
    user_id    uuid        PRIMARY KEY,
    email      text,
    deleted_at timestamptz,
    CONSTRAINT memberships_accounts_erased_check CHECK (deleted_at IS NULL OR email IS NULL)
);
CREATE INDEX memberships_accounts_email_idx ON memberships_accounts (email) WHERE email IS NOT NULL;
DELETE FROM projection_checkpoints WHERE name = 'memberships';

-- +goose Down
DROP TABLE memberships_accounts;
