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
    -- Set with the marker, and undone with it if a subtransaction that
    -- took both rolls back. The transaction's start time as the value: a
    -- session-level SET could not stand for a transaction to come.
    IF current_setting('usersd.events_writer', true) = transaction_timestamp()::text THEN
        RETURN;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'this transaction wrote before it appended events'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call events_mark_writer() before the transaction''s first write: subscriptions may already have read past it.';
    END IF;
    -- 1702261879 is "evtw" in ASCII; readers look for exactly this key.
    PERFORM pg_advisory_xact_lock_shared(1702261879, 0);
    PERFORM set_config('usersd.events_writer', transaction_timestamp()::text, true);
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
