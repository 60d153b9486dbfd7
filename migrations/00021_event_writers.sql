-- Event writers declare themselves (issue 19, visibility; decisions.md
-- 2026-12-06). Subscriptions used to read only below pg_snapshot_xmin, the
-- oldest transaction with an id anywhere on the server, so every writing
-- transaction (a projection's batch, the outbox, the mailer, another
-- database's) held every subscriber back. Now a transaction that inserts
-- events holds a shared advisory lock (the marker) from before it has a
-- transaction id until it ends, and the subscription's horizon ignores the
-- running transactions that do not hold it (adapters/eventstore/postgres
-- read.go gives the argument why no event can be skipped).
--
-- events_mark_writer() takes the marker once per transaction. The trigger
-- calls it before every INSERT or COPY into events, so a plain statement
-- needs nothing more. It refuses a transaction that already has an id and
-- no marker: a subscription may already have judged it a transaction that
-- writes no events and read past it. Such a transaction must call
-- events_mark_writer() before its first write.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION events_mark_writer() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NULL THEN
        -- No id yet: take the marker. Taking it again in the same
        -- transaction only counts up a lock already held (no shared
        -- memory), so every statement may call this.
        -- 1702261879 is "evtw" in ASCII; readers look for exactly this key.
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(1702261879, 0);
        RETURN;
    END IF;
    -- An id already: only a transaction that took the marker before it may
    -- go on (a later statement of a marked transaction). Asked of the lock
    -- table, not of a setting any role could make; the rare path pays it.
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_locks
        WHERE pid = pg_catalog.pg_backend_pid() AND granted AND locktype = 'advisory'
        AND classid = 1702261879 AND objid = 0 AND objsubid = 2
        AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
    ) THEN
        RAISE EXCEPTION 'this transaction wrote before it appended events'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call events_mark_writer() before the transaction''s first write: subscriptions may already have read past it.';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION events_writer_marker() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM events_mark_writer();
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER events_writer_marker BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_writer_marker();
-- Like the append-only triggers: a session in replica mode must mark too.
ALTER TABLE events ENABLE ALWAYS TRIGGER events_writer_marker;

-- +goose Down
DROP TRIGGER events_writer_marker ON events;
DROP FUNCTION events_writer_marker();
DROP FUNCTION events_mark_writer();
