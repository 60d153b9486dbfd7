-- Webhooks (issue 18; docs/integrations.md, "Webhooks").
--
-- webhooks            the subscriptions, as the dispatcher (the projection
--                     "webhooks", adapters/webhooks) applied their events,
--                     in the order of the events: what GET .../webhooks
--                     lists, and whom each event is delivered to
-- webhook_secrets     each webhook's signing secret, wrapped under the
--                     key-encryption key like the data keys
--                     (adapters/keystore); never in an event
-- webhook_deliveries  the delivery log: one row per (webhook, event) to
--                     deliver, written pending in the dispatcher's
--                     checkpoint transaction, then the sender's attempts
-- webhook_replays     replays asked for and not yet enqueued: where each
--                     has got to in the event history
-- watermill_webhook_deliveries         the queue: watermill-sql's
--                     PostgreSQL queue schema (a row per delivery, deleted
--                     once handled); the sender reads it by partition
-- watermill_webhook_deliveries_poison  deliveries that failed after the
--                     last retry

-- +goose Up
CREATE TABLE webhooks (
    webhook_id       uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL,
    url              text        NOT NULL,
    events           text[]      NOT NULL,
    created_at       timestamptz NOT NULL,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL
);
CREATE INDEX webhooks_workspace_idx ON webhooks (workspace_id, created_at, webhook_id);

CREATE TABLE webhook_secrets (
    webhook_id   uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    wrapped      bytea       NOT NULL,
    kek_id       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- A rotation looks for the secrets still wrapped under an older KEK.
CREATE INDEX webhook_secrets_kek_id_idx ON webhook_secrets (kek_id);

CREATE TABLE webhook_deliveries (
    delivery_id      uuid        PRIMARY KEY,
    webhook_id       uuid        NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    status           text        NOT NULL DEFAULT 'pending',
    last_status_code integer,
    last_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed'))
);
-- The log's pages, newest first.
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, seq DESC);
-- The retention sweep of finished rows.
CREATE INDEX webhook_deliveries_done_idx ON webhook_deliveries (last_attempt_at) WHERE status <> 'pending';

CREATE TABLE webhook_replays (
    replay_id         uuid        PRIMARY KEY,
    webhook_id        uuid        NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    workspace_id      uuid        NOT NULL,
    next_commit       bigint      NOT NULL,
    next_prepare      bigint      NOT NULL,
    to_commit         bigint      NOT NULL,
    to_prepare        bigint      NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE watermill_webhook_deliveries (
    "offset"   bigserial   PRIMARY KEY,
    uuid       varchar(36) NOT NULL,
    payload    json        DEFAULT NULL,
    metadata   json        DEFAULT NULL,
    acked      boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- Each partition's subscriber reads its own messages in order.
CREATE INDEX watermill_webhook_deliveries_partition_idx
    ON watermill_webhook_deliveries (((metadata->>'partition')::int), "offset") WHERE NOT acked;

CREATE TABLE watermill_webhook_deliveries_poison (
    "offset"   bigserial   PRIMARY KEY,
    uuid       varchar(36) NOT NULL,
    payload    json        DEFAULT NULL,
    metadata   json        DEFAULT NULL,
    acked      boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- +goose Down
DROP TABLE watermill_webhook_deliveries_poison;
DROP TABLE watermill_webhook_deliveries;
DROP TABLE webhook_replays;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;
DROP TABLE webhooks;
