-- Access reviews (issue 17): tables of the history read model
-- (projections/history/tables.sql). The history projection keeps its
-- checkpoint: no review was started before these tables existed, so nothing
-- needs replaying.

-- +goose Up

CREATE TABLE access_reviews (
    workspace_id       uuid        NOT NULL,
    review_id          uuid        NOT NULL,
    name               text        NOT NULL,
    started_by         uuid,
    started_at         timestamptz NOT NULL,
    as_of_commit       bigint      NOT NULL,
    as_of_prepare      bigint      NOT NULL,
    items              integer     NOT NULL,
    decided            integer     NOT NULL DEFAULT 0,
    completed_by       uuid,
    completed_at       timestamptz,
    completed_commit   bigint,
    completed_prepare  bigint,
    completed_event_id uuid,
    PRIMARY KEY (workspace_id, review_id),
    CONSTRAINT access_reviews_completed_check CHECK ((completed_at IS NULL) = (completed_commit IS NULL) AND (completed_at IS NULL) = (completed_event_id IS NULL))
);

CREATE TABLE access_review_items (
    workspace_id  uuid        NOT NULL,
    review_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL,
    email         text        NOT NULL,
    name          text,
    role          text        NOT NULL,
    status        text        NOT NULL,
    granted_by    uuid,
    granted_at    timestamptz,
    last_login_at timestamptz,
    dormant       boolean     NOT NULL,
    decision      text,
    new_role      text,
    comment       text,
    decided_by    uuid,
    decided_at    timestamptz,
    sort_key      text COLLATE "C" GENERATED ALWAYS AS (lower(coalesce(name, email))) STORED,
    PRIMARY KEY (workspace_id, review_id, user_id),
    CONSTRAINT access_review_items_decision_check CHECK (decision IN ('keep', 'change_role', 'revoke'))
);

-- +goose Down
DROP TABLE access_review_items;
DROP TABLE access_reviews;
