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
