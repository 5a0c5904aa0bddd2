"""Fills the labelled feature store from the topics: decisions from ``output``, labels from
``training``.

Decisions carry the features *as computed at decision time*, so a model trained on the store
sees exactly what the detector saw (no leakage from later state). Both upserts are
idempotent, and offsets are committed only after the rows are in PostgreSQL, so a crash
replays a batch without duplicating or losing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import psycopg
import structlog
from confluent_kafka import Consumer

from fraudstream.contracts.messages import Decision, Label
from fraudstream.learning.feature_store import upsert_decisions, upsert_labels
from fraudstream.settings import Settings

log = structlog.get_logger(__name__)
_decision = msgspec.json.Decoder(Decision)
_label = msgspec.json.Decoder(Label)


class Collector:
    def __init__(
        self, settings: Settings, group_id: str = "fraudstream-feature-store", keep_open: bool = False
    ) -> None:
        """``keep_open``: :meth:`run` can be called again (the trainer collects in slices);
        then call :meth:`close` at the end."""
        self.settings = settings
        self.keep_open = keep_open
        self._subscribed = False
        self.consumer = Consumer({
            **settings.kafka_client_config(), "group.id": group_id, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed", "log_level": 3,
        })
        self.decisions = 0
        self.labels = 0

    def run(self, should_stop: Callable[[], bool] = lambda: False, max_idle_s: float | None = None) -> None:
        s = self.settings
        if not self._subscribed:
            self.consumer.subscribe([s.topic_output, s.topic_training])
            self._subscribed = True
        idle_since = time.monotonic()
        with psycopg.connect(s.dsn) as conn:
            while not should_stop():
                msgs = [m for m in self.consumer.consume(5000, timeout=0.5) if self._ok(m)]
                if not msgs:
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        break
                    continue
                idle_since = time.monotonic()
                decisions: list[Any] = []
                labels: list[Any] = []
                for m in msgs:
                    try:
                        if m.topic() == s.topic_output:
                            decisions.append(_decision.decode(m.value() or b""))
                        else:
                            labels.append(_label.decode(m.value() or b""))
                    except (msgspec.MsgspecError, TypeError, UnicodeDecodeError):
                        log.warning("collector.skip", topic=m.topic(), offset=m.offset())
                upsert_decisions(conn, decisions)
                upsert_labels(conn, labels)
                self.consumer.commit(asynchronous=False)
                self.decisions += len(decisions)
                self.labels += len(labels)
        if not self.keep_open:
            self.close()

    def close(self) -> None:
        self.consumer.close()

    @staticmethod
    def _ok(m: Any) -> bool:
        return m.error() is None
