"""Worker behaviour that needs no cluster."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from fraudstream.pipeline.worker import Worker


def test_a_stopping_worker_claims_no_partition() -> None:
    """An assignment that reaches a worker while it stops (inside consumer.close()) is left to
    the group: fetching committed offsets there times out and failed a clean stop."""
    worker = Worker.__new__(Worker)
    worker.stopping = True
    worker.states = {}

    def refuse(_partitions: list[int]) -> dict[int, int]:
        raise AssertionError("a stopping worker fetched committed offsets")

    worker._committed = refuse  # type: ignore[method-assign]
    worker._on_assign(None, [TopicPartition("input", 1)])  # type: ignore[arg-type]
    assert worker.states == {}
