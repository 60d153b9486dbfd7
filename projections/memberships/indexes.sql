-- Indexes only readers need (a rebuild builds them after its replay).
-- Not unique: an address erased and invited again gets a second account,
-- and a rebuild may read the first one's address in clear from events
-- written before sealing until its AccountDeleted clears it.
CREATE INDEX memberships_accounts_email_idx ON memberships_accounts (email) WHERE email IS NOT NULL;
