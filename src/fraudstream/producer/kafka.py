"""A high-throughput idempotent producer for ``input`` and ``training``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import KafkaError, Producer

from fraudstream.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class SendStats:
    queued: int = 0
    delivered: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)


#: A live producer (a payment gateway) sends each transaction as it comes: waiting to fill
#: batches would add its wait to every transaction's latency.
LIVE_OVERRIDES = {"linger.ms": 2}


class BatchProducer:
    """Idempotent (``acks=all``) producer sending lists of pre-encoded messages.

    Keys are hashed with murmur2 like the Java client, so any Kafka client agrees on which
    partition a customer's transactions live in.
    """

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        conf: dict[str, Any] = {
            **settings.kafka_client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 20_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "partitioner": "murmur2_random",
            "log_level": 3,
            "on_delivery": self._on_delivery,
            # Reports for failures only: a Python callback per delivered message would cost
            # as much as producing it. Delivered = queued - failed once flush() returns 0.
            "delivery.report.only.error": True,
        }
        conf.update(overrides)
        self._producer = Producer(conf)
        self.stats = SendStats()

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.stats.errors += 1
            if len(self.stats.error_samples) < 10:
                self.stats.error_samples.append(str(err))

    def send(self, topic: str, keys: list[bytes], values: list[bytes], timestamps_ms: list[int]) -> None:
        """Queue messages, stamped with their event time; waits while the local queue is full.

        (``produce_batch`` would be cheaper per call but cannot set message timestamps, which
        the detector needs to seek the log by event time.)
        """
        produce = self._producer.produce
        i, n = 0, len(keys)
        while i < n:
            try:
                for i in range(i, n):  # noqa: B020 - resume where the full queue stopped us
                    produce(topic, values[i], keys[i], timestamp=timestamps_ms[i])
                i = n
            except BufferError:
                self._producer.poll(0.05)
        self.stats.queued += n
        self._producer.poll(0)

    def flush(self, timeout_s: float = 120.0) -> int:
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(timeout_s)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(1)
        self.stats.delivered = self.stats.queued - self.stats.errors - remaining
        return remaining
