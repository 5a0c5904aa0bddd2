"""A background reader of ``output`` and ``training`` that feeds a :class:`StatsWindow`, and
samples the detector group's consumer lag on ``input``.

It belongs to no consumer group (partitions are assigned, nothing is committed), starts at
the beginning of the window (offsets looked up by timestamp) so a restarted API shows the last
hour at once, and reads decisions ``read_committed`` like any downstream consumer. Only the
two fields it needs are decoded. If the topics do not exist yet it retries until they do.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import msgspec
import structlog
from confluent_kafka import OFFSET_END, Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream.api.stats.window import StatsWindow
from fraudstream.settings import Settings

log = structlog.get_logger(__name__)
DETECTOR_GROUP = "fraudstream-detector"


class _DecisionFields(msgspec.Struct):
    decision: str
    tx_datetime: str


class _LabelFields(msgspec.Struct):
    is_fraud: bool


_decision = msgspec.json.Decoder(_DecisionFields)
_label = msgspec.json.Decoder(_LabelFields)


def event_ms(tx_datetime: str) -> int | None:
    try:
        return int(datetime.fromisoformat(tx_datetime).timestamp() * 1000)
    except ValueError:
        return None


class StatsCollector(threading.Thread):
    def __init__(self, settings: Settings, window: StatsWindow | None = None,
                 group: str = DETECTOR_GROUP, lag_every_s: float = 5.0) -> None:
        super().__init__(name="api-stats", daemon=True)
        self.settings = settings
        self.window = window or StatsWindow(settings.api_stats_window_minutes)
        self.group = group
        self.lag_every_s = lag_every_s
        self.lag: dict[int, int] = {}
        self.assigned = False
        self._halt = threading.Event()
        self._admin = AdminClient({**settings.kafka_client_config(), "log_level": 3})
        self._consumer = Consumer({
            **settings.kafka_client_config(), "group.id": "fraudstream-api-stats",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "auto.offset.reset": "latest", "log_level": 3,
        })

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        next_lag = 0.0
        try:
            while not self._halt.is_set():
                if not self.assigned and not self._assign():
                    self._halt.wait(2.0)
                    continue
                for m in self._consumer.consume(2000, timeout=0.5):
                    if m.error() is None:
                        self._record(m)
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + self.lag_every_s
                    self._sample_lag()
        except Exception:  # the API keeps serving; the overview then shows no new points
            log.exception("api.stats.crashed")
        finally:
            self._consumer.close()

    def _assign(self) -> bool:
        s = self.settings
        start = int((time.time() - s.api_stats_window_minutes * 60) * 1000)
        try:
            md = self._consumer.list_topics(timeout=5)
            wanted = [TopicPartition(t, p, start) for t in (s.topic_output, s.topic_training)
                      if t in md.topics for p in md.topics[t].partitions]
            if len({tp.topic for tp in wanted}) < 2:
                return False
            found = self._consumer.offsets_for_times(wanted, timeout=10)
        except KafkaException as exc:
            log.warning("api.stats.assign_failed", error=str(exc))
            return False
        # No message after ``start``: offset -1, i.e. the end.
        self._consumer.assign([
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ])
        self.assigned = True
        return True

    def _record(self, m: Any) -> None:
        ts = m.timestamp()[1]
        try:
            if m.topic() == self.settings.topic_output:
                d = _decision.decode(m.value())
                self.window.add_decision(ts, d.decision, event_ms(d.tx_datetime))
            else:
                self.window.add_label(ts, _label.decode(m.value()).is_fraud)
        except (msgspec.MsgspecError, TypeError):
            pass  # not ours to judge: the producers' contracts are checked elsewhere

    def _sample_lag(self) -> None:
        try:
            self.lag = consumer_lag(self._admin, self._consumer, self.settings.topic_input, self.group)
        except KafkaException as exc:
            log.debug("api.stats.lag_failed", error=str(exc))
            return
        self.window.set_lag(int(time.time() * 1000), sum(self.lag.values()))


def consumer_lag(admin: AdminClient, consumer: Consumer, topic: str, group: str) -> dict[int, int]:
    """Per partition of ``topic``: end offset minus ``group``'s committed offset (all of it
    when the group has committed nothing)."""
    md = consumer.list_topics(topic, timeout=5)
    if topic not in md.topics or md.topics[topic].error is not None:
        return {}
    partitions = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, partitions)])[group]
    committed = {tp.partition: tp.offset for tp in future.result(timeout=5).topic_partitions}
    lag = {}
    for tp in partitions:
        low, high = consumer.get_watermark_offsets(tp, timeout=5)
        pos = committed.get(tp.partition, -1)
        lag[tp.partition] = max(0, high - (pos if pos >= 0 else low))
    return lag
