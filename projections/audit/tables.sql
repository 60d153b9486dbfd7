-- The audit history's tables (package audit), with their keys, which Apply
-- reads through (the chain heads, the addresses, the event ids of replays),
-- and the triggers that keep audit_entries append-only. The filter indexes
-- are in indexes.sql, which a rebuild builds after its replay
-- (projections.Schema). Names are unqualified: the tables go to the schema
-- first on the search_path (projections.CreateTables). The live tables were
-- made by migrations/00005_audit.sql (changed by 00010), which also made the
-- trigger function audit_refuse_change; a change here needs a migration that makes the live
-- tables the same (TestSchemasMatchMigrations).
--
-- audit_entries is append-only: row and statement triggers refuse UPDATE,
-- DELETE and TRUNCATE for everyone, the table owner included, and they are
-- ENABLE ALWAYS so that session_replication_role = replica does not switch
-- them off either. Only ALTER TABLE ... DISABLE TRIGGER (owner or superuser,
-- and itself visible in the server log) gets past them; the hash chain makes
-- what happens then detectable (audit.Verify). The triggers come with the
-- table, so no audit_entries ever exists without them; they cost an insert
-- nothing (they fire on UPDATE, DELETE and TRUNCATE only).
--
-- The column order is the order of the binary COPY that Apply sends
-- (columnNames in hash.go; TestCopyMatchesTheTable).
--
-- A batch chains from each workspace's last entry, read through the primary
-- key: no separate table of chain heads, which every batch would rewrite.
-- audit_user_emails remembers the e-mail address of each (workspace, user)
-- for the events that carry none (InvitationEmailSent/Failed, UserLoggedIn);
-- it is plain state of the projection, rebuilt with it.

CREATE TABLE audit_entries (
    workspace_id       uuid        NOT NULL,
    -- 1, 2, 3... per workspace, in global event order.
    seq                bigint      NOT NULL,
    event_id           uuid        NOT NULL,
    occurred_at        timestamptz NOT NULL,
    actor_id           uuid,
    actor_email        text,
    actor_system       boolean     NOT NULL,
    action             text        NOT NULL,
    target_id          uuid,
    target_email       text,
    details            jsonb       NOT NULL,
    correlation_id     text,
    causation_id       text,
    request_ip         text,
    request_user_agent text,
    commit_position    bigint      NOT NULL,
    prepare_position   bigint      NOT NULL,
    -- hex(sha256(prev_hash || canonical content)); '' before the first.
    prev_hash          text        NOT NULL,
    hash               text        NOT NULL,
    CONSTRAINT audit_entries_pkey PRIMARY KEY (workspace_id, seq),
    CONSTRAINT audit_entries_event_id_key UNIQUE (event_id),
    CONSTRAINT audit_entries_seq_check CHECK (seq > 0)
);

CREATE TRIGGER audit_entries_no_update_delete BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_update_delete;
ALTER TABLE audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_truncate;

CREATE TABLE audit_user_emails (
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL,
    email        text NOT NULL,
    CONSTRAINT audit_user_emails_pkey PRIMARY KEY (workspace_id, user_id)
);
-- An account's deletion purges its addresses in every workspace (Apply).
CREATE INDEX audit_user_emails_user_idx ON audit_user_emails (user_id);
