-- The key store (issue 16, crypto-shredding; docs/erasure.md): the data
-- key of each person, and the server's own keys, each wrapped under the
-- operator's key-encryption key (KEK), which never comes into the database.
--
-- account_keys has one row per person that ever had a key. Destroying a key
-- (erasure) sets wrapped to NULL and erased_at: the row stays, as a
-- tombstone, so that the primary key serialises a key's creation against
-- its destruction and no creation can follow it (adapters/keystore). A
-- trigger refuses, for every role, DELETE and TRUNCATE (which would remove
-- tombstones) and any UPDATE of an erased row (which would bring a key back
-- or move the erasure's time); only the owner's maintenance procedure
-- (usersd.maintenance = on, as for the events) gets past it.
--
-- server_keys holds the server's secrets by name (the stream-name HMAC
-- key): the same trigger refuses DELETE and TRUNCATE, since a lost secret
-- would, for example, make every account's stream name unfindable.
--
-- usersd_grant_service learns a third kind of table, those guarded by a
-- trigger named <table>_no_delete: the service's role gets SELECT, INSERT
-- and UPDATE on them (it creates, destroys and re-wraps keys), no DELETE
-- nor TRUNCATE. The function is otherwise that of 00008.

-- +goose Up

CREATE TABLE account_keys (
    user_id    uuid PRIMARY KEY,
    wrapped    bytea,
    kek_id     text,
    created_at timestamptz NOT NULL,
    erased_at  timestamptz,
    CONSTRAINT account_keys_erased CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CONSTRAINT account_keys_kek CHECK ((wrapped IS NULL) = (kek_id IS NULL))
);
-- A rotation looks for the keys still wrapped under an older KEK.
CREATE INDEX account_keys_kek_id ON account_keys (kek_id) WHERE kek_id IS NOT NULL;

CREATE TABLE server_keys (
    name    text PRIMARY KEY,
    wrapped bytea NOT NULL,
    kek_id  text NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION keys_refuse_change() RETURNS trigger
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
    IF TG_OP = 'UPDATE' THEN
        IF OLD.erased_at IS NULL THEN
            RETURN NEW;
        END IF;
        IF NEW.wrapped IS NULL AND NEW.erased_at = OLD.erased_at AND NEW.user_id = OLD.user_id THEN
            RETURN NEW; -- erasing again changes nothing
        END IF;
        RAISE EXCEPTION 'the key of account % was destroyed: it cannot come back', OLD.user_id
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'An erased account stays erased; a new account gets a new id and key.';
    END IF;
    RAISE EXCEPTION 'keys are never removed: % on %.% is not allowed',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'A key is destroyed by erasing its account (its row stays, without the key); only the owner may remove rows, in the maintenance procedure of the README.';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER account_keys_no_delete BEFORE UPDATE OR DELETE ON account_keys
    FOR EACH ROW EXECUTE FUNCTION keys_refuse_change();
CREATE TRIGGER account_keys_no_truncate BEFORE TRUNCATE ON account_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keys_refuse_change();
ALTER TABLE account_keys ENABLE ALWAYS TRIGGER account_keys_no_delete;
ALTER TABLE account_keys ENABLE ALWAYS TRIGGER account_keys_no_truncate;

CREATE TRIGGER server_keys_no_delete BEFORE DELETE ON server_keys
    FOR EACH ROW EXECUTE FUNCTION keys_refuse_change();
CREATE TRIGGER server_keys_no_truncate BEFORE TRUNCATE ON server_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keys_refuse_change();
ALTER TABLE server_keys ENABLE ALWAYS TRIGGER server_keys_no_delete;
ALTER TABLE server_keys ENABLE ALWAYS TRIGGER server_keys_no_truncate;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION usersd_grant_service(p_role name) RETURNS void
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
                       WHERE t.tgrelid = c.oid AND t.tgname = c.relname || '_no_update_delete') AS append_only,
               EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = c.oid AND t.tgname = c.relname || '_no_delete') AS keeps_rows
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
            ELSIF r.keeps_rows THEN
                v_want := ARRAY['SELECT', 'INSERT', 'UPDATE'];
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
                IF (r.append_only OR r.keeps_rows) AND pg_catalog.has_table_privilege(v_role, r.oid, v_priv) THEN
                    RAISE EXCEPTION 'the service''s role "%" may % %, which is guarded, through PUBLIC or a role it belongs to',
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

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION usersd_grant_service(p_role name) RETURNS void
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

DROP TABLE server_keys;
DROP TABLE account_keys;
DROP FUNCTION keys_refuse_change();
