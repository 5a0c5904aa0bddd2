-- Partition fencing (0003) for the least-privilege detector role (0004), without giving it
-- DELETE or UPDATE on any table: the three fencing steps are SECURITY DEFINER functions that
-- do exactly one thing each, and the detector may only EXECUTE them.

-- Take a partition over: bump its epoch and delete the rows of attempts that never committed
-- on Kafka (offsets >= the committed one). Returns the caller's new epoch.
CREATE OR REPLACE FUNCTION fraudstream_claim_partition(
    p_topic text, p_partition integer, p_committed bigint, p_owner text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    new_epoch bigint;
BEGIN
    INSERT INTO partition_owners AS o (topic, partition, owner) VALUES (p_topic, p_partition, p_owner)
    ON CONFLICT (topic, partition) DO UPDATE
        SET epoch = o.epoch + 1, owner = EXCLUDED.owner, claimed_at = now()
    RETURNING epoch INTO new_epoch;
    DELETE FROM fraudulent_transactions
        WHERE source_partition = p_partition AND source_offset >= greatest(p_committed, 0);
    RETURN new_epoch;
END
$$;

-- The partitions among p_partitions whose epoch is no longer the caller's. Their rows stay
-- share-locked until the caller's transaction ends, so a claim cannot slip in between this
-- check and the caller's insert.
CREATE OR REPLACE FUNCTION fraudstream_lost_partitions(
    p_topic text, p_partitions integer[], p_epochs bigint[]
) RETURNS integer[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    held bigint;
    lost integer[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_partitions, 1), 0) LOOP
        SELECT epoch INTO held FROM partition_owners
            WHERE topic = p_topic AND partition = p_partitions[i] FOR SHARE;
        IF held IS DISTINCT FROM p_epochs[i] THEN
            lost := lost || p_partitions[i];
        END IF;
    END LOOP;
    RETURN lost;
END
$$;

-- After an aborted batch: delete its rows if the caller still owns the partition.
-- Returns false (nothing deleted) when another worker claimed it since.
CREATE OR REPLACE FUNCTION fraudstream_discard_uncommitted(
    p_topic text, p_partition integer, p_committed bigint, p_epoch bigint
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF array_length(fraudstream_lost_partitions(p_topic, ARRAY[p_partition], ARRAY[p_epoch]), 1) > 0 THEN
        RETURN false;
    END IF;
    DELETE FROM fraudulent_transactions
        WHERE source_partition = p_partition AND source_offset >= greatest(p_committed, 0);
    RETURN true;
END
$$;

REVOKE ALL ON FUNCTION fraudstream_claim_partition(text, integer, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraudstream_lost_partitions(text, integer[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraudstream_discard_uncommitted(text, integer, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraudstream_claim_partition(text, integer, bigint, text) TO fraudstream_detector;
GRANT EXECUTE ON FUNCTION fraudstream_lost_partitions(text, integer[], bigint[]) TO fraudstream_detector;
GRANT EXECUTE ON FUNCTION fraudstream_discard_uncommitted(text, integer, bigint, bigint) TO fraudstream_detector;
