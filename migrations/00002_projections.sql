-- Projection checkpoints (projections.Runner, projections.Rebuild).
--
-- One row per projection: the position of the last event its read model
-- holds. The runner moves it in the same transaction as the rows it writes,
-- and only from the value it read (a fence: a runner that lost its lock, or
-- whose tables a rebuild swapped, matches no row and starts over). The two
-- columns are domain.Position's commit and prepare parts.

-- +goose Up
CREATE TABLE projection_checkpoints (
    name             text        PRIMARY KEY,
    commit_position  bigint      NOT NULL,
    prepare_position bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE projection_checkpoints;
