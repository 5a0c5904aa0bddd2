"""Analyst verdicts as labels on ``training`` (the ``Label`` contract, source ``analyst``).

This closes the learning loop: the collector joins the label with the features the detector
stored at decision time, and the next training run learns from it. Publishing waits for the
brokers' acknowledgement (``acks=all``, idempotent producer) so the API only reports success
for a label that is durably on the topic.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import msgspec
from confluent_kafka import KafkaError, KafkaException, Producer

from fraudstream.contracts.messages import Label
from fraudstream.settings import Settings

_encoder = msgspec.json.Encoder()


class PublishError(RuntimeError):
    """The label could not be delivered (the caller rolls the review back)."""


def analyst_label(transaction_id: str, is_fraud: bool, now: datetime | None = None) -> Label:
    return Label(transaction_id=transaction_id, is_fraud=is_fraud,
                 labeled_at=now or datetime.now(UTC), source="analyst")


class LabelPublisher:
    """A thread-safe idempotent producer for ``training`` that confirms each delivery."""

    def __init__(self, settings: Settings, timeout_s: float = 15.0, **overrides: Any) -> None:
        self.topic = settings.topic_training
        self.timeout_s = timeout_s
        self._producer = Producer({
            **settings.kafka_client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "message.timeout.ms": int(timeout_s * 1000),
            "log_level": 3,
            **overrides,
        })

    def publish(self, label: Label) -> None:
        """Send one label keyed by transaction id, stamped with ``labeled_at``; raise on failure."""
        done = threading.Event()
        errors: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err)
            done.set()

        try:
            self._producer.produce(
                self.topic, _encoder.encode(label), str(label.transaction_id).encode(),
                timestamp=int(label.labeled_at.timestamp() * 1000), on_delivery=delivered,
            )
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"label not queued: {exc}") from exc
        while not done.is_set():
            # flush() serves the delivery callbacks of every thread's messages.
            if self._producer.flush(self.timeout_s) > 0 and not done.is_set():
                raise PublishError("label not acknowledged in time")
        if errors:
            raise PublishError(f"label not delivered: {errors[0]}")

    def close(self) -> None:
        self._producer.flush(self.timeout_s)
