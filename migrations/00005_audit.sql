-- The audit history read model (projections/audit).
--
-- audit_entries is append-only: row and statement triggers refuse UPDATE,
-- DELETE and TRUNCATE for everyone, the table owner included, and they are
-- ENABLE ALWAYS so that session_replication_role = replica does not switch
-- them off either. Only ALTER TABLE ... DISABLE TRIGGER (owner or superuser,
-- and itself visible in the server log) gets past them; the hash chain makes
-- what happens then detectable (audit.Verify).
--
-- A batch chains from each workspace's last entry, read through the primary
-- key: no separate table of chain heads, which every batch would rewrite.
-- audit_user_emails remembers the e-mail address of each (workspace, user)
-- for the events that carry none (InvitationEmailSent/Failed, UserLoggedIn);
-- it is plain state of the projection, rebuilt with it.
--
-- audit_create_tables(schema) creates the two tables, their indexes and
-- the triggers in the given schema: the migration calls it for public. A
-- projection rebuild (projections.DeferredIndexes) calls
-- audit_create_tables(schema, false) for a fresh schema, which creates the
-- tables with their keys (which Apply reads through: the chain heads, the
-- addresses, the event ids of replays) and the triggers, but not the
-- filter indexes; it replays the history into them, then calls
-- audit_create_indexes(schema), which builds those once over the full table,
-- and later moves the tables into public (ALTER TABLE ... SET SCHEMA;
-- triggers and indexes move along). audit_create_tables(schema) calls
-- audit_create_indexes itself, so each index is defined in one place. The
-- triggers come with the tables, so no audit_entries ever exists without
-- them; they cost an insert nothing (they fire on UPDATE, DELETE and
-- TRUNCATE only).

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit history is append-only: % on %.% is not allowed',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit entries can only be added; nobody may change or remove them.';
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION audit_create_indexes(p_schema text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The filters of GET /audit. Every index costs each insert of the live
    -- runner (a rebuild builds them once, after its replay), so only what
    -- pays for itself: actor and target (selective), ending in seq for the
    -- keyset order; action only for the rare actions, as logins, the bulk of
    -- a history, are found fast enough along the primary key (audit.List
    -- names the action as a literal so that the planner can use the partial
    -- index); time as BRIN: entries are appended in event order, so blocks
    -- follow occurred_at closely, and a BRIN index costs next to nothing to
    -- keep. autosummarize has autovacuum summarize each block range as it
    -- fills; ranges not summarized yet (the newest) are always read.
    EXECUTE format('CREATE INDEX audit_entries_actor_idx ON %I.audit_entries (workspace_id, actor_id, seq)', p_schema);
    EXECUTE format('CREATE INDEX audit_entries_target_idx ON %I.audit_entries (workspace_id, target_id, seq)', p_schema);
    EXECUTE format($sql$CREATE INDEX audit_entries_action_idx ON %I.audit_entries (workspace_id, action, seq)
        WHERE action <> 'UserLoggedIn'$sql$, p_schema);
    EXECUTE format('CREATE INDEX audit_entries_occurred_at_idx ON %I.audit_entries USING brin (occurred_at)
        WITH (pages_per_range = 32, autosummarize = on)', p_schema);
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION audit_create_tables(p_schema text, p_with_secondary_indexes boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($sql$
        CREATE TABLE %1$I.audit_entries (
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
        )$sql$, p_schema);

    EXECUTE format(
        'CREATE TRIGGER audit_entries_no_update_delete BEFORE UPDATE OR DELETE ON %I.audit_entries
         FOR EACH ROW EXECUTE FUNCTION public.audit_refuse_change()', p_schema);
    EXECUTE format(
        'CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON %I.audit_entries
         FOR EACH STATEMENT EXECUTE FUNCTION public.audit_refuse_change()', p_schema);
    EXECUTE format('ALTER TABLE %I.audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_update_delete', p_schema);
    EXECUTE format('ALTER TABLE %I.audit_entries ENABLE ALWAYS TRIGGER audit_entries_no_truncate', p_schema);

    EXECUTE format($sql$
        CREATE TABLE %I.audit_user_emails (
            workspace_id uuid NOT NULL,
            user_id      uuid NOT NULL,
            email        text NOT NULL,
            CONSTRAINT audit_user_emails_pkey PRIMARY KEY (workspace_id, user_id)
        )$sql$, p_schema);

    IF p_with_secondary_indexes THEN
        PERFORM public.audit_create_indexes(p_schema);
    END IF;
END
$$;
-- +goose StatementEnd

SELECT audit_create_tables('public');

-- +goose Down
DROP TABLE audit_user_emails;
DROP TABLE audit_entries;
DROP FUNCTION audit_create_tables(text, boolean);
DROP FUNCTION audit_create_indexes(text);
DROP FUNCTION audit_refuse_change();
