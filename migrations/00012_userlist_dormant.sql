-- The user list sorted and filtered by last login (issue 17, dormant
-- access; projections/userlist/tables.sql and indexes.sql): every list row
-- gets a login row, NULL until a first login, and the logins an index in
-- last-login order. The rows of the people who never logged in are added
-- here, as Apply now writes them.

-- +goose Up
ALTER TABLE userlist_logins ALTER COLUMN last_login_at DROP NOT NULL;
INSERT INTO userlist_logins (workspace_id, user_id, last_login_at)
    SELECT workspace_id, user_id, NULL FROM userlist_users
    ON CONFLICT (workspace_id, user_id) DO NOTHING;
CREATE INDEX userlist_logins_sort_idx ON userlist_logins (workspace_id, (coalesce(last_login_at, '-infinity'::timestamptz)), user_id);

-- +goose Down
DROP INDEX userlist_logins_sort_idx;
DELETE FROM userlist_logins WHERE last_login_at IS NULL;
ALTER TABLE userlist_logins ALTER COLUMN last_login_at SET NOT NULL;
