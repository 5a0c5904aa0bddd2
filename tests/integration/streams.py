"""Helpers for pipeline tests: feed a frame through the producer, read topics back."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import msgspec
import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from fraudstream.producer.kafka import BatchProducer
from fraudstream.producer.replay import replay
from fraudstream.settings import Settings


def feed(settings: Settings, frame: pd.DataFrame, label_delay: timedelta | None = timedelta(days=7)) -> None:
    summary = replay(BatchProducer(settings), frame, topic_input=settings.topic_input,
                     topic_training=settings.topic_training, label_delay=label_delay)
    assert summary.stats.errors == 0


def read_topic(
    settings: Settings, topic: str, until: Callable[[list], bool], timeout_s: float = 300,
    isolation: str = "read_committed",
) -> list:
    """All messages of ``topic`` (every partition from the start) once ``until(messages)``."""
    c = Consumer({**settings.kafka_client_config(), "group.id": "reader", "enable.auto.commit": False,
                  "isolation.level": isolation, "auto.offset.reset": "earliest", "log_level": 3})
    md = c.list_topics(topic, timeout=30)
    c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    out: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            out.extend(m for m in c.consume(10000, timeout=0.5) if m.error() is None)
            if until(out):
                # drain anything already there, so duplicates would be seen too
                while batch := [m for m in c.consume(10000, timeout=1.0) if m.error() is None]:
                    out.extend(batch)
                return out
    finally:
        c.close()
    raise TimeoutError(f"{topic}: {len(out)} messages after {timeout_s}s")


def decisions(messages: list) -> list[dict]:
    return [msgspec.json.decode(m.value()) for m in messages]
