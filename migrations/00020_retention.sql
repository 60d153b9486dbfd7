-- Retention of the operational tables (issue 20; adapters/messaging
-- retention.go, docs/retention.md). The events and the audit entries are
-- the history and are never pruned; the e-mail pipeline's tables are.
--
-- mail_deliveries.settled_at  when the retention sweeper first saw that the
--                             row's attempt can no longer be mailed (its
--                             link no longer works: accepted, revoked,
--                             replaced, expired), so that de-duplication no
--                             longer needs the row; it is deleted
--                             USERSD_DELIVERY_RETENTION later. NULL: still
--                             needed, or not looked at yet.
-- dev_mailbox_sent_idx        the sweep of the development mailbox by age.
-- retention_sweeps            what the last sweep pruned, per kind of row,
--                             for `usersd status` (one row per kind).

-- +goose Up
ALTER TABLE mail_deliveries ADD COLUMN settled_at timestamptz;
CREATE INDEX mail_deliveries_settled_idx ON mail_deliveries (settled_at) WHERE settled_at IS NOT NULL;

CREATE INDEX dev_mailbox_sent_idx ON dev_mailbox (sent_at);

CREATE TABLE retention_sweeps (
    kind         text        PRIMARY KEY,
    last_run_at  timestamptz NOT NULL,
    last_pruned  bigint      NOT NULL,
    total_pruned bigint      NOT NULL,
    last_error   text
);

-- +goose Down
DROP TABLE retention_sweeps;
DROP INDEX dev_mailbox_sent_idx;
DROP INDEX mail_deliveries_settled_idx;
ALTER TABLE mail_deliveries DROP COLUMN settled_at;
