-- A person's rows across workspaces: an account's deletion purges them
-- (userlist and history apply AccountDeleted by user id) and the account
-- export reads them, both by user_id alone, which the primary keys
-- (workspace_id first) cannot serve. Without these every deletion and
-- every export read the whole table.

-- +goose Up
CREATE INDEX userlist_users_user_idx ON userlist_users (user_id);
CREATE INDEX userlist_logins_user_idx ON userlist_logins (user_id);
CREATE INDEX membership_intervals_user_idx ON membership_intervals (user_id);

-- +goose Down
DROP INDEX membership_intervals_user_idx;
DROP INDEX userlist_logins_user_idx;
DROP INDEX userlist_users_user_idx;
