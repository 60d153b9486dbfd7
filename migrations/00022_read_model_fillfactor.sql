-- Room on each page for the update that follows an insert (issue 19,
-- docs/per-invitation.md). Nearly every membership_intervals row is
-- updated once (its interval closed), and every invited userlist_users
-- row at least once (its e-mail's status). An update that finds no room
-- on the row's page writes its new version on another page: a lock record
-- for the old one, the whole new row (no prefix/suffix compression across
-- pages), and, for the user list, new entries in every index (not HOT),
-- the trigram index's included. Measured with the WAL window, under
-- the whole-service benchmark, these were about half the user list's
-- updates and nearly all of the history's. Changing fillfactor rewrites
-- nothing: pages filled from now on keep the room. The read models' SQL
-- (projections/userlist/tables.sql, projections/history/tables.sql) says
-- the same, so a rebuild makes the same tables.

-- +goose Up
ALTER TABLE userlist_users SET (fillfactor = 70);
ALTER TABLE membership_intervals SET (fillfactor = 80);

-- +goose Down
ALTER TABLE userlist_users SET (fillfactor = 85);
ALTER TABLE membership_intervals RESET (fillfactor);
