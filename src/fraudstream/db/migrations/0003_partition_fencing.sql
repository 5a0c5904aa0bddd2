-- Fencing of detector writes per input partition.
--
-- A worker that takes a partition over bumps its epoch here (and deletes the rows of attempts
-- that never committed on Kafka, offsets >= the committed one); every batch write checks, in
-- the same PostgreSQL transaction, that the epochs of its partitions are still its own. A
-- paused or partitioned "zombie" worker therefore cannot add rows for decisions that the
-- partition's new owner makes again (possibly differently, e.g. after a model swap).
CREATE TABLE IF NOT EXISTS partition_owners (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    epoch       bigint      NOT NULL DEFAULT 1,
    owner       text,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

CREATE INDEX IF NOT EXISTS fraudulent_transactions_source_idx
    ON fraudulent_transactions (source_partition, source_offset);
