-- Invitation e-mails (adapters/messaging, adapters/email; docs/email.md).
--
-- The queue is watermill-sql's PostgreSQL schema, created here rather than by
-- watermill at run time, so that a fresh database and `usersd migrate` have
-- it and the service needs no DDL rights:
--   watermill_invitation_emails          the outbox: one SendInvitationEmail
--                                         per row (ids and attempt, no link),
--                                         written in the process manager's
--                                         checkpoint transaction
--   watermill_offsets_invitation_emails  where the mailer's consumer group is
--   watermill_invitation_emails_poison   messages that failed for good
-- The DDL is watermill-sql v4's DefaultPostgreSQLSchema and
-- DefaultPostgreSQLOffsetsAdapter, which the code uses with
-- InitializeSchema off.

-- +goose Up
CREATE TABLE watermill_invitation_emails (
    "offset"         bigserial,
    uuid             varchar(36) NOT NULL,
    created_at       timestamp   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload          json        DEFAULT NULL,
    metadata         json        DEFAULT NULL,
    transaction_id   xid8        NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);

CREATE TABLE watermill_offsets_invitation_emails (
    consumer_group                varchar(255) NOT NULL,
    offset_acked                  bigint,
    last_processed_transaction_id xid8         NOT NULL,
    PRIMARY KEY (consumer_group)
);

CREATE TABLE watermill_invitation_emails_poison (
    "offset"         bigserial,
    uuid             varchar(36) NOT NULL,
    created_at       timestamp   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload          json        DEFAULT NULL,
    metadata         json        DEFAULT NULL,
    transaction_id   xid8        NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);

-- One row per e-mail that left us (or failed for good), keyed by invitation
-- and attempt: the mailer looks here before sending, so a redelivered
-- message sends nothing. recorded_at is set once the outcome is an event;
-- rows without it are recorded again after a restart.
CREATE TABLE mail_deliveries (
    invitation_id uuid        NOT NULL,
    attempt       integer     NOT NULL,
    workspace_id  uuid        NOT NULL,
    failure       text,
    delivered_at  timestamptz NOT NULL DEFAULT now(),
    recorded_at   timestamptz,
    PRIMARY KEY (invitation_id, attempt)
);
CREATE INDEX mail_deliveries_unrecorded_idx ON mail_deliveries (delivered_at) WHERE recorded_at IS NULL;

-- The development mailbox: where e-mails go when SMTP_URL is unset. In the
-- database, so they survive restarts and every replica lists them.
CREATE TABLE dev_mailbox (
    id            uuid        PRIMARY KEY,
    workspace_id  uuid        NOT NULL,
    invitation_id uuid        NOT NULL,
    attempt       integer     NOT NULL,
    to_address    text        NOT NULL,
    subject       text        NOT NULL,
    text_body     text        NOT NULL,
    html_body     text        NOT NULL,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (invitation_id, attempt)
);
CREATE INDEX dev_mailbox_workspace_idx ON dev_mailbox (workspace_id, sent_at DESC, id);

-- +goose Down
DROP TABLE dev_mailbox;
DROP TABLE mail_deliveries;
DROP TABLE watermill_invitation_emails_poison;
DROP TABLE watermill_offsets_invitation_emails;
DROP TABLE watermill_invitation_emails;
