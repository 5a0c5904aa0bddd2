"""PostgreSQL fencing of partition owners: a worker that lost a partition cannot add rows."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from fraudstream.sinks.postgres import Fenced, SuspiciousRow, SuspiciousSink

from .conftest import Pipeline

pytestmark = pytest.mark.integration


def row(tx: str, partition: int, offset: int) -> SuspiciousRow:
    now = datetime(2018, 4, 1, tzinfo=UTC)
    return SuspiciousRow(
        transaction_id=tx, tx_datetime=now, customer_id="c", terminal_id="t", tx_amount=10.0,
        currency="EUR", channel=None, merchant_category=None, country=None, lat=None, lon=None,
        score=0.9, decision="review", reasons=["r"], features={"f": 1.0}, model_version=None,
        rules_version="1", detected_at=now, source_partition=partition, source_offset=offset,
    )


def ids(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT transaction_id FROM fraudulent_transactions")}


def test_a_new_owner_fences_the_old_one_and_drops_uncommitted_rows(pipeline: Pipeline) -> None:
    dsn, topic = pipeline.settings.dsn, pipeline.settings.topic_input
    old, new = SuspiciousSink(dsn), SuspiciousSink(dsn)
    try:
        e_old = old.claim(topic, 1, committed=0, owner="old")
        assert old.write([row("a", 1, 5), row("b", 1, 9)], topic, {1: e_old}) == 2
        other = old.claim(topic, 2, committed=0, owner="old")
        # The old owner committed offsets up to 7 on Kafka, then wrote a batch that aborted.
        e_new = new.claim(topic, 1, committed=7, owner="new")
        assert e_new == e_old + 1
        assert ids(dsn) == {"a"}, "the row of the uncommitted attempt (offset 9) is gone"
        with pytest.raises(Fenced) as info:
            old.write([row("c", 1, 10), row("d", 2, 3)], topic, {1: e_old, 2: other})
        assert info.value.partitions == [1]
        assert ids(dsn) == {"a"}, "a fenced write adds nothing, not even its other partitions' rows"
        assert old.write([row("d", 2, 3)], topic, {2: other}) == 1  # partition 2 is still its own
        assert new.write([row("b", 1, 9)], topic, {1: e_new}) == 1
        with pytest.raises(Fenced):
            old.discard_uncommitted(topic, 1, 0, e_old)
        new.discard_uncommitted(topic, 1, 9, e_new)
        assert ids(dsn) == {"a", "d"}
    finally:
        old.close()
        new.close()


def test_a_writer_frozen_inside_its_transaction_does_not_block_a_claim_for_good(
    pipeline: Pipeline,
) -> None:
    """A worker frozen (SIGSTOP, VM pause) between the fencing check of its write and the
    commit holds the partition's row share-locked: the next owner's claim waited until the
    frozen one woke up (74 s in a fault test). Detector sessions end an idle transaction after
    a timeout, which releases the lock."""
    dsn, topic = pipeline.settings.dsn, pipeline.settings.topic_input
    frozen, new = SuspiciousSink(dsn, idle_in_transaction_timeout_s=2), SuspiciousSink(dsn)
    try:
        epoch = frozen.claim(topic, 1, committed=0, owner="frozen")
        conn = frozen._connect()
        conn.execute("SELECT fraudstream_lost_partitions(%s, %s, %s)", (topic, [1], [epoch]))
        # ... and nothing more: the transaction stays open, as in a process that stopped here.
        started = datetime.now(UTC)
        assert new.claim(topic, 1, committed=0, owner="new") == epoch + 1
        waited = (datetime.now(UTC) - started).total_seconds()
        assert 1 <= waited < 15, f"the claim waited {waited:.1f} s"
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):  # its session ended
            conn.execute("SELECT 1")
        with pytest.raises(Fenced):  # and when it wakes up, it is fenced
            frozen.write([row("z", 1, 3)], topic, {1: epoch})
    finally:
        frozen.close()
        new.close()
