-- Temporary roles (issue 17): the user list shows when a temporary role ends
-- (roleUntil), and the expiry scheduler finds due grants by it. No event
-- before this one carried an end, so existing rows keep NULL and nothing
-- needs replaying.

-- +goose Up
ALTER TABLE userlist_users ADD COLUMN role_until timestamptz;
CREATE INDEX userlist_users_role_until_idx ON userlist_users (role_until) WHERE role_until IS NOT NULL;

-- +goose Down
DROP INDEX userlist_users_role_until_idx;
ALTER TABLE userlist_users DROP COLUMN role_until;
