-- Two database roles, and the events append-only (issue 15; README,
-- "Database roles").
--
-- The owner runs the migrations and owns every table, function and trigger.
-- The service's role (DATABASE_URL of `usersd serve`) owns nothing; the
-- owner grants it what it needs with usersd_grant_service(role), which
-- usersd calls after migrating, on every start (it changes nothing when
-- nothing is missing), so that tables added by later migrations are
-- covered too:
--   - SELECT and INSERT, nothing more, on the append-only tables: those
--     guarded by a trigger named <table>_no_update_delete (events,
--     audit_entries);
--   - SELECT on goose_db_version (serve checks that nothing is pending);
--   - SELECT, INSERT, UPDATE and DELETE on every other table of public
--     (the read models, checkpoints, the outbox, the mailer's tables);
--   - USAGE and SELECT on the sequences.
-- It refuses a role that owns anything here, that is a superuser, may
-- create roles, or is (a member of) the owner, and one that could still
-- UPDATE, DELETE or TRUNCATE an append-only table or create objects in
-- public (through PUBLIC or another role) after its grants.
--
-- The events refuse UPDATE, DELETE and TRUNCATE (triggers, ENABLE ALWAYS,
-- as the audit's) for every role. The one exception is the maintenance
-- procedure of the README: the owner (or a superuser), in a transaction
-- that sets usersd.maintenance to on. The service's role cannot use it (it
-- is not the owner), nor replace the trigger function or drop or disable
-- the triggers (it owns neither).

-- +goose Up

-- +goose StatementBegin
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.current_setting('usersd.maintenance', true) = 'on'
        AND pg_catalog.pg_has_role(current_user,
            (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
    THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the events are append-only: % on %.% is not allowed',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Events can only be appended. Only the owner may change them, in the maintenance procedure of the README (SET LOCAL usersd.maintenance = on).';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate;

-- +goose StatementBegin
CREATE FUNCTION usersd_grant_service(p_role name) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_role   oid;
    v_owner  oid;
    v_super  boolean;
    v_create boolean;
    r        record;
    v_all    text[];
    v_want   text[];
    v_priv   text;
    v_has    boolean;
    v_kind   text;
BEGIN
    SELECT a.oid, a.rolsuper, a.rolcreaterole INTO v_role, v_super, v_create
    FROM pg_catalog.pg_roles a WHERE a.rolname = p_role;
    IF v_role IS NULL THEN
        RAISE EXCEPTION 'the service''s role "%" does not exist', p_role
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with LOGIN only, e.g. CREATE ROLE usersd_service LOGIN PASSWORD ''...''; the migrations grant it the rest.';
    END IF;
    SELECT c.relowner INTO v_owner FROM pg_catalog.pg_class c WHERE c.oid = 'public.events'::regclass;
    IF v_super OR v_create OR pg_catalog.pg_has_role(v_role, v_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'the service''s role "%" is a superuser, may create roles, or is (a member of) the owner "%": it could rewrite the events',
            p_role, pg_catalog.pg_get_userbyid(v_owner)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Give usersd serve a role of its own, created with LOGIN only.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relowner = v_role)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE proowner = v_role)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspowner = v_role)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typowner = v_role)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = current_database() AND datdba = v_role)
    THEN
        RAISE EXCEPTION 'the service''s role "%" owns objects in database "%": it must own nothing', p_role, current_database()
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'As the owner: REASSIGN OWNED BY <service role> TO <owner>.';
    END IF;

    -- Replicas starting together would collide on the catalog rows
    -- ("tuple concurrently updated"): one at a time. The key is "usersgr"
    -- in ASCII (0x75736572736772); the migrations' lock is another.
    PERFORM pg_catalog.pg_advisory_xact_lock(33059451824203634);

    IF NOT pg_catalog.has_database_privilege(v_role, current_database(), 'CONNECT') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), p_role);
    END IF;
    IF NOT pg_catalog.has_schema_privilege(v_role, 'public', 'USAGE') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', p_role);
    END IF;
    IF pg_catalog.has_schema_privilege(v_role, 'public', 'CREATE') THEN
        -- PostgreSQL before 15 lets PUBLIC create in public.
        EXECUTE format('REVOKE CREATE ON SCHEMA public FROM %I', p_role);
        IF pg_catalog.has_schema_privilege(v_role, 'public', 'CREATE')
            AND pg_catalog.pg_has_role(current_user,
                (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'), 'USAGE')
        THEN
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
        END IF;
        IF pg_catalog.has_schema_privilege(v_role, 'public', 'CREATE') THEN
            RAISE EXCEPTION 'the service''s role "%" may create objects in schema public', p_role
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'As the owner of schema public: REVOKE CREATE ON SCHEMA public FROM PUBLIC.';
        END IF;
    END IF;

    FOR r IN
        SELECT c.oid, c.relname, c.relkind,
               EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = c.oid AND t.tgname = c.relname || '_no_update_delete') AS append_only
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
        ORDER BY c.relname
    LOOP
        v_kind := CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END;
        IF r.relkind = 'S' THEN
            v_all := ARRAY['USAGE', 'SELECT', 'UPDATE'];
            v_want := ARRAY['USAGE', 'SELECT'];
        ELSE
            v_all := ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'];
            IF r.append_only THEN
                v_want := ARRAY['SELECT', 'INSERT'];
            ELSIF r.relname = 'goose_db_version' THEN
                v_want := ARRAY['SELECT'];
            ELSE
                v_want := ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
            END IF;
        END IF;
        FOREACH v_priv IN ARRAY v_all LOOP
            IF r.relkind = 'S' THEN
                v_has := pg_catalog.has_sequence_privilege(v_role, r.oid, v_priv);
            ELSE
                v_has := pg_catalog.has_table_privilege(v_role, r.oid, v_priv);
            END IF;
            IF v_priv = ANY (v_want) AND NOT v_has THEN
                EXECUTE format('GRANT %s ON %s %s TO %I', v_priv, v_kind, r.oid::regclass, p_role);
            ELSIF NOT v_priv = ANY (v_want) AND v_has THEN
                EXECUTE format('REVOKE %s ON %s %s FROM %I', v_priv, v_kind, r.oid::regclass, p_role);
                IF r.append_only AND pg_catalog.has_table_privilege(v_role, r.oid, v_priv) THEN
                    RAISE EXCEPTION 'the service''s role "%" may % %, which is append-only, through PUBLIC or a role it belongs to',
                        p_role, v_priv, r.oid::regclass
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'Revoke that privilege from PUBLIC or from that role.';
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END
$fn$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION usersd_grant_service(name) FROM PUBLIC;

-- +goose Down
DROP FUNCTION usersd_grant_service(name);
DROP TRIGGER events_no_truncate ON events;
DROP TRIGGER events_no_update_delete ON events;
DROP FUNCTION events_refuse_change();
