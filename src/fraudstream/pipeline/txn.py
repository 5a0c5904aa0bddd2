"""The detector's transactional producer: its configuration, and calls that cannot block
the worker for good.

librdkafka's ``send_offsets_to_transaction`` can wait forever, past its own timeout, when the
group coordinator it cached was removed from the cluster metadata (a broker killed and
restarted): the coordinator request only moves on when that broker changes state, and a
decommissioned broker never does (librdkafka issues #5456 and #5511, open for the version
pinned here; seen in this project's broker fail-over test, both workers stuck > 7 min). The
call therefore runs on a thread of its own, and the worker gives up on it after a deadline:
it abandons that producer, starts another with the same transactional id (which fences the
old one and aborts its transaction) and decides the batch again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Producer

from fraudstream.settings import Settings

T = TypeVar("T")


def producer_config(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The detector's transactional producer (also what the bench's Kafka-alone pass-through
    and ``benchmarks/txn_steps.py`` measure, so that they time the same protocol)."""
    return {
        **settings.kafka_client_config(),
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        # Back-to-back transactions: the next one's first requests are refused while the
        # coordinator still writes the previous one's markers (CONCURRENT_TRANSACTIONS);
        # librdkafka's default 100 ms before retrying was most of a commit's time.
        "retry.backoff.ms": 10,
        # A worker frozen mid-transaction (VM pause, SIGSTOP) blocks its partitions' next
        # owner until the coordinator aborts the transaction: keep that short, but above a
        # broker fail-over (messages of a transaction time out with it). A commit slower
        # than this is aborted and the batch redone, which is safe.
        "transaction.timeout.ms": 30_000,
        "log_level": 3,
    }


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, headers: list | None = None
) -> None:
    """Queue one message, waiting while the producer's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
            return
        except BufferError:
            producer.poll(0.05)


class Wedged(Exception):
    """The call did not return by its deadline; the client it was made on is unusable."""


def call_with_deadline(call: Callable[[], T], deadline_s: float, name: str = "txn-call") -> T:
    """``call()``'s result or exception, or :class:`Wedged` after ``deadline_s``. The thread
    of a wedged call is a daemon left blocked: it cannot be interrupted from Python."""
    done = threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    if not done.wait(deadline_s):
        raise Wedged(f"{name} still blocked after {deadline_s:.0f} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
