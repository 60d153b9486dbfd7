-- Three more partitions of the invitation e-mail queue (adapters/messaging,
-- docs/email.md). watermill-sql hands a consumer group's messages to one
-- subscriber at a time, so one topic is mailed one e-mail after another;
-- the process manager spreads e-mails over four topics by invitation id
-- (watermill_invitation_emails of 00006 is partition 0), and the mailer
-- consumes the four side by side. An invitation's attempts stay in order,
-- since they share a partition. Same DDL as in 00006.

-- +goose Up
CREATE TABLE watermill_invitation_emails_p1 (
    "offset" bigserial, uuid varchar(36) NOT NULL, created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload json DEFAULT NULL, metadata json DEFAULT NULL, transaction_id xid8 NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);
CREATE TABLE watermill_invitation_emails_p2 (
    "offset" bigserial, uuid varchar(36) NOT NULL, created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload json DEFAULT NULL, metadata json DEFAULT NULL, transaction_id xid8 NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);
CREATE TABLE watermill_invitation_emails_p3 (
    "offset" bigserial, uuid varchar(36) NOT NULL, created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload json DEFAULT NULL, metadata json DEFAULT NULL, transaction_id xid8 NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);
CREATE TABLE watermill_offsets_invitation_emails_p1 (
    consumer_group varchar(255) NOT NULL, offset_acked bigint, last_processed_transaction_id xid8 NOT NULL,
    PRIMARY KEY (consumer_group)
);
CREATE TABLE watermill_offsets_invitation_emails_p2 (
    consumer_group varchar(255) NOT NULL, offset_acked bigint, last_processed_transaction_id xid8 NOT NULL,
    PRIMARY KEY (consumer_group)
);
CREATE TABLE watermill_offsets_invitation_emails_p3 (
    consumer_group varchar(255) NOT NULL, offset_acked bigint, last_processed_transaction_id xid8 NOT NULL,
    PRIMARY KEY (consumer_group)
);

-- +goose Down
DROP TABLE watermill_offsets_invitation_emails_p3;
DROP TABLE watermill_offsets_invitation_emails_p2;
DROP TABLE watermill_offsets_invitation_emails_p1;
DROP TABLE watermill_invitation_emails_p3;
DROP TABLE watermill_invitation_emails_p2;
DROP TABLE watermill_invitation_emails_p1;
