"""How far a consumer group has committed through ``input``: the bench's progress probe.

Why offsets and not a reader of ``output``: the detector (and the Kafka-alone floor) commits its
``input`` offsets inside the Kafka transaction that carries the decisions, so the group's
committed offsets move exactly when decisions become visible to a ``read_committed`` reader of
``output``. Asking the group coordinator a few times a second costs nothing on the 2 cores the
system under test shares with the bench, whereas a reader fetching every decision cost about
4 us a transaction (18 % of a core at 46,000 tx/s, session 18's per-thread sampling). The
decisions themselves are still read back and counted, after the timed window.
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from fraudstream.settings import Settings

__all__ = ["DETECTOR_GROUP", "FLOOR_GROUP", "Progress"]

DETECTOR_GROUP = "fraudstream-detector"
FLOOR_GROUP = "fraudstream-floor"


class Progress:
    """Committed offsets of ``group`` on ``topic`` (all its partitions), summed.

    The probe never joins the group. It reads with ``read_uncommitted`` so that the
    coordinator answers with the offsets of committed transactions at once instead of
    "unstable offset" retries while the next transaction is open: offsets sent with an open
    transaction are only applied to the group when that transaction commits.
    """

    def __init__(self, settings: Settings, group: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                **settings.kafka_client_config(),
                "group.id": group,
                "enable.auto.commit": False,
                "isolation.level": "read_uncommitted",
                "log_level": 3,
            }
        )
        parts = sorted(self._consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        self._tps = [TopicPartition(topic, p) for p in parts]

    def committed(self, timeout_s: float = 10.0) -> dict[int, int]:
        """Partition -> committed offset (0 when the group has committed nothing there)."""
        got = self._consumer.committed(self._tps, timeout=timeout_s)
        return {tp.partition: max(tp.offset, 0) for tp in got}

    def ends(self, timeout_s: float = 10.0) -> dict[int, int]:
        """Partition -> high watermark (what has been written)."""
        return {
            tp.partition: self._consumer.get_watermark_offsets(tp, timeout=timeout_s)[1] for tp in self._tps
        }

    def lag(self) -> int:
        """Messages written but not yet committed by the group."""
        done, ends = self.committed(), self.ends()
        return sum(max(0, ends[p] - done[p]) for p in ends)

    def close(self) -> None:
        self._consumer.close()
