-- The list's indexes (package userlist): the page queries, one index per
-- filter that narrows the order (the other filters are checked on the rows
-- the index yields), and the trigram search (the pg_trgm extension, made by
-- migrations/00003_userlist.sql, must be on the search_path). Apply needs
-- none of them, so a rebuild builds them once over the replayed tables.

CREATE INDEX userlist_users_sort_idx ON userlist_users (workspace_id, sort_key, user_id);
CREATE INDEX userlist_users_status_sort_idx ON userlist_users (workspace_id, status, sort_key, user_id);
CREATE INDEX userlist_users_role_sort_idx ON userlist_users (workspace_id, role, sort_key, user_id);
CREATE INDEX userlist_users_search_idx ON userlist_users USING gin (search gin_trgm_ops);
-- The list by last login (sort=lastLoginAt, -lastLoginAt, and inactiveSince
-- as a range of it): never logged in sorts first as -infinity, so the key
-- is never NULL and a keyset row comparison works; read backwards for
-- newest first, never logged in last.
CREATE INDEX userlist_logins_sort_idx ON userlist_logins (workspace_id, (coalesce(last_login_at, '-infinity'::timestamptz)), user_id);
-- The expiry scheduler's search for due temporary roles: few rows have one.
CREATE INDEX userlist_users_role_until_idx ON userlist_users (role_until) WHERE role_until IS NOT NULL;
