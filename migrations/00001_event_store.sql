-- The PostgreSQL event store (adapters/eventstore/postgres).
--
-- Events are ordered globally by (tx_id, position), not by position alone: a
-- transaction that took position 10 may commit after one that took 11, and a
-- reader that followed position alone would skip 10. Readers only look at
-- transactions below the oldest one still running (pg_snapshot_xmin), so no
-- transaction can later commit a row before what they have read.

-- +goose Up
CREATE TABLE events (
    -- Order of insertion inside the writing transaction.
    position   bigserial   NOT NULL,
    -- The writing transaction's id (xid8 fits a bigint for 2^63 transactions).
    tx_id      bigint      NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    event_id   uuid        NOT NULL,
    stream_id  text        NOT NULL,
    -- Counts from zero in each stream.
    revision   bigint      NOT NULL,
    type       text        NOT NULL,
    data       jsonb       NOT NULL,
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Optimistic concurrency: two appends racing for one revision collide here.
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, revision),
    -- Idempotency: an event id is stored once.
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_revision_check CHECK (revision >= 0)
);

-- The global order read by subscriptions.
CREATE UNIQUE INDEX events_tx_id_position_key ON events (tx_id, position);

-- +goose StatementBegin
-- find_append tells whether p_ids were already appended to p_stream: status
-- 'duplicate' with the original result if every id is stored in p_stream in
-- the given order with consecutive revisions, 'idempotency' if the first id is
-- stored otherwise, and NULL if the first id is not stored.
CREATE FUNCTION find_append(
    p_stream text,
    p_ids    uuid[],
    OUT status           text,
    OUT last_revision    bigint,
    OUT commit_position  bigint,
    OUT prepare_position bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_stream text;
    v_first  bigint;
    v_count  bigint;
BEGIN
    SELECT e.stream_id, e.revision INTO v_stream, v_first
    FROM events e WHERE e.event_id = p_ids[1];
    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT count(*) INTO v_count
    FROM unnest(p_ids) WITH ORDINALITY AS g(id, n)
    JOIN events e ON e.event_id = g.id
    WHERE e.stream_id = p_stream AND e.revision = v_first + g.n - 1;

    IF v_stream IS DISTINCT FROM p_stream OR v_count <> cardinality(p_ids) THEN
        status := 'idempotency';
        RETURN;
    END IF;

    SELECT 'duplicate', e.revision, e.tx_id, e.position
    INTO status, last_revision, commit_position, prepare_position
    FROM events e
    WHERE e.stream_id = p_stream AND e.revision = v_first + cardinality(p_ids) - 1;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- append_events appends events to a stream in one statement, so one round trip.
-- p_expected is the expected revision: >= 0 exactly that revision, -1 any,
-- -2 no stream, -3 stream exists. It answers status
--   'appended'                with the last event's revision and position,
--   'duplicate'/'idempotency' as find_append, for a retried append,
--   'wrong_expected_revision' with the stream's last revision (NULL: none).
-- Two appends racing for the same revision both pass the check; the second
-- fails on events_pkey when the first commits, and the caller maps that.
-- NOTIFY is deliberately not sent here: it takes a database-wide lock held
-- until commit, which would serialise every writer. The Go store notifies
-- after commit instead. (For exact and no-stream expectations the Go store
-- first tries the same insert as one plain statement, which is cheaper, and
-- calls this function when that inserts nothing or loses a race.)
CREATE FUNCTION append_events(
    p_stream   text,
    p_expected bigint,
    p_ids      uuid[],
    p_types    text[],
    p_data     jsonb[],
    p_metadata jsonb[],
    OUT status           text,
    OUT last_revision    bigint,
    OUT commit_position  bigint,
    OUT prepare_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_current bigint;
BEGIN
    IF p_expected IN (-1, -3) THEN
        -- Appends taking whatever revision is next would all race for it on
        -- a busy stream and retry; queue them per stream until commit
        -- instead. The two-key form never meets single-key advisory locks
        -- (migrations, projections); 1970496882 is "user" in ASCII.
        PERFORM pg_advisory_xact_lock(1970496882, hashtext(p_stream));
    END IF;

    SELECT e.revision INTO v_current
    FROM events e WHERE e.stream_id = p_stream
    ORDER BY e.revision DESC LIMIT 1;

    IF (p_expected = -2 AND v_current IS NOT NULL)
        OR (p_expected = -3 AND v_current IS NULL)
        OR (p_expected >= 0 AND v_current IS DISTINCT FROM p_expected)
    THEN
        -- A retry of an append that succeeded fails the check (the stream
        -- moved on by its own events), so look for it before refusing.
        -- Retries with expected "any" reach the insert and fail on
        -- events_event_id_key instead; the caller then calls find_append.
        SELECT * INTO status, last_revision, commit_position, prepare_position
        FROM find_append(p_stream, p_ids) f;
        IF status IS NULL THEN
            status := 'wrong_expected_revision';
            last_revision := v_current;
        END IF;
        RETURN;
    END IF;

    WITH inserted AS (
        INSERT INTO events (event_id, stream_id, revision, type, data, metadata)
        SELECT e.id, p_stream, coalesce(v_current, -1) + e.n, e.type, e.data, e.metadata
        FROM unnest(p_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS e(id, type, data, metadata, n)
        ORDER BY e.n
        RETURNING revision, tx_id, position
    )
    SELECT 'appended', i.revision, i.tx_id, i.position
    INTO status, last_revision, commit_position, prepare_position
    FROM inserted i ORDER BY i.revision DESC LIMIT 1;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]);
DROP FUNCTION find_append(text, uuid[]);
DROP TABLE events;
